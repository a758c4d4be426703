//! Image preparation: region statistics (SUVmax, SUVpeak), normalisation
//! (fraction of SUVmax, tumour-to-background ratio, z-score, ADC units) and
//! the serialisable description of which image a mapping reads.

use std::borrow::Cow;

use dosepaint_core::{Grid, Structure, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inputs::{MappingInputs, TARGET};
use crate::smooth::{smooth_values, smooth_windows};

/// Three lengths in mm along x, y and z (a margin, a smoothing FWHM). In a
/// spec it is written as one number (isotropic) or as `[x, y, z]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mm3(pub [f64; 3]);

impl From<f64> for Mm3 {
    fn from(v: f64) -> Self {
        Mm3([v; 3])
    }
}

impl From<[f64; 3]> for Mm3 {
    fn from(v: [f64; 3]) -> Self {
        Mm3(v)
    }
}

impl Default for Mm3 {
    fn default() -> Self {
        Mm3([0.0; 3])
    }
}

impl Mm3 {
    /// Whether all three are zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0.0)
    }

    pub(crate) fn check(&self, what: &str) -> Result<[f64; 3]> {
        if self.0.iter().all(|v| v.is_finite() && *v >= 0.0) {
            Ok(self.0)
        } else {
            Err(Error::invalid(
                what,
                format!("{:?} mm must be finite and >= 0", self.0),
            ))
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Mm3Repr {
    One(f64),
    Three([f64; 3]),
}

impl Serialize for Mm3 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let [x, y, z] = self.0;
        if x.to_bits() == y.to_bits() && y.to_bits() == z.to_bits() {
            Mm3Repr::One(x).serialize(s)
        } else {
            Mm3Repr::Three(self.0).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Mm3 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match Mm3Repr::deserialize(d)? {
            Mm3Repr::One(v) => Mm3([v; 3]),
            Mm3Repr::Three(v) => Mm3(v),
        })
    }
}

/// A statistic of a reference region used to normalise an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceStatistic {
    /// The mean (the usual choice for blood pool and muscle).
    #[default]
    Mean,
    /// The median (robust to spill-in at the region's edge).
    Median,
}

/// The unit an ADC map is stored in; everything downstream works in mm^2/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdcUnit {
    /// mm^2/s (free water at 37 C: about 3.0e-3 mm^2/s).
    Mm2PerS,
    /// 1e-6 mm^2/s (= um^2/s), the integer unit many scanners store.
    Micro,
    /// um^2/ms = 1e-3 mm^2/s.
    Um2PerMs,
}

impl AdcUnit {
    /// Factor to mm^2/s.
    pub fn to_mm2_per_s(self) -> f64 {
        match self {
            AdcUnit::Mm2PerS => 1.0,
            AdcUnit::Micro => 1e-6,
            AdcUnit::Um2PerMs => 1e-3,
        }
    }
}

/// Largest ADC (mm^2/s) accepted inside the target after unit conversion:
/// over three times free water at body temperature, so anything above is a
/// unit error, not tissue.
pub const ADC_MAX_PLAUSIBLE_MM2_PER_S: f64 = 0.01;

/// How an image is normalised before a mapping reads it.
///
/// Each is an affine map `a I + b` of the (optionally smoothed) image, whose
/// coefficients come from statistics of a named region.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// The image as it is (e.g. SUV from the I/O crate).
    #[default]
    None,
    /// `I / SUVmax(region)`: a fraction of the maximum (FDG thresholds are
    /// often 40-50 % of SUVmax).
    SuvMax {
        /// Region whose maximum is used (usually `"target"`).
        #[serde(default = "default_target")]
        region: String,
    },
    /// `I / SUVpeak(region)`, with SUVpeak the highest mean over a sphere of
    /// `sphere_cm3` (1 cm^3 in PERCIST, Wahl et al. 2009, J Nucl Med 50:122S).
    SuvPeak {
        /// Region searched for the sphere centre.
        #[serde(default = "default_target")]
        region: String,
        /// Volume of the sphere in cm^3.
        #[serde(default = "default_sphere")]
        sphere_cm3: f64,
    },
    /// Tumour-to-background ratio `I / stat(region)`: FMISO tumour-to-blood
    /// (blood pool) or tumour-to-muscle ratio.
    ReferenceRatio {
        /// The background region (e.g. `"blood"`).
        region: String,
        /// Which statistic of the background.
        #[serde(default)]
        statistic: ReferenceStatistic,
    },
    /// `(I - mean(region)) / sd(region)`, the sample standard deviation.
    ZScore {
        /// The reference region.
        region: String,
    },
    /// An ADC map converted to mm^2/s (and checked for plausibility inside the
    /// target).
    Adc {
        /// The unit the map is stored in.
        unit: AdcUnit,
    },
}

fn default_target() -> String {
    TARGET.to_string()
}

fn default_sphere() -> f64 {
    1.0
}

impl Normalization {
    fn is_none(&self) -> bool {
        matches!(self, Normalization::None)
    }
}

/// Which image a mapping reads and how it is prepared: smoothing first (if
/// any), then normalisation.
///
/// In a spec: `{"image": "fmiso", "normalization": {"reference_ratio":
/// {"region": "blood"}}, "smoothing_fwhm_mm": 4}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    /// Name of the image in the [`MappingInputs`].
    pub image: String,
    /// Normalisation applied after smoothing.
    #[serde(default, skip_serializing_if = "Normalization::is_none")]
    pub normalization: Normalization,
    /// Gaussian smoothing FWHM in mm (one number or `[x, y, z]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing_fwhm_mm: Option<Mm3>,
}

impl ImageSource {
    /// The raw image of that name.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            normalization: Normalization::None,
            smoothing_fwhm_mm: None,
        }
    }

    /// With a normalisation.
    #[must_use]
    pub fn normalized(mut self, normalization: Normalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// Tumour-to-background ratio against the mean of `region`.
    #[must_use]
    pub fn ratio_to(self, region: impl Into<String>) -> Self {
        self.normalized(Normalization::ReferenceRatio {
            region: region.into(),
            statistic: ReferenceStatistic::Mean,
        })
    }

    /// With Gaussian smoothing of that FWHM (mm).
    #[must_use]
    pub fn smoothed(mut self, fwhm_mm: impl Into<Mm3>) -> Self {
        self.smoothing_fwhm_mm = Some(fwhm_mm.into());
        self
    }

    /// The prepared image as a volume on the planning grid.
    ///
    /// # Errors
    /// A missing image or region, or a normalisation that cannot be computed
    /// (a zero reference mean, a constant z-score region, an implausible ADC).
    pub fn prepare(&self, inputs: &MappingInputs) -> Result<Volume<f32>> {
        let p = prepare_on(self, inputs, true)?;
        let values: Vec<f32> = (0..p.len()).map(|n| p.at(n) as f32).collect();
        Ok(Volume::from_vec(inputs.grid().clone(), values)?)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.image.trim().is_empty() {
            return Err(Error::invalid("image source", "the image name is empty"));
        }
        if let Some(f) = &self.smoothing_fwhm_mm {
            f.check(&format!("smoothing FWHM of image \"{}\"", self.image))?;
        }
        if let Normalization::SuvPeak { sphere_cm3, .. } = self.normalization {
            crate::error::positive("SUVpeak sphere volume (cm^3)", sphere_cm3)?;
        }
        Ok(())
    }

    pub(crate) fn label(&self) -> String {
        let norm = match &self.normalization {
            Normalization::None => String::new(),
            Normalization::SuvMax { region } => format!(" / SUVmax({region})"),
            Normalization::SuvPeak { region, .. } => format!(" / SUVpeak({region})"),
            Normalization::ReferenceRatio { region, .. } => format!(" / {region}"),
            Normalization::ZScore { region } => format!(" z-score vs {region}"),
            Normalization::Adc { .. } => " (mm^2/s)".into(),
        };
        format!("{}{norm}", self.image)
    }
}

/// A prepared image: `value = data * scale + offset`, the data borrowed from
/// the inputs unless smoothing made a new array.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub(crate) name: String,
    data: Cow<'a, [f32]>,
    scale: f64,
    offset: f64,
}

impl Prepared<'_> {
    #[inline]
    pub(crate) fn at(&self, n: usize) -> f64 {
        f64::from(self.data[n]) * self.scale + self.offset
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Values at the given voxels.
    pub(crate) fn values_at(&self, indices: &[u32]) -> Vec<f64> {
        indices.iter().map(|&n| self.at(n as usize)).collect()
    }
}

pub(crate) fn prepare<'a>(src: &ImageSource, inputs: &'a MappingInputs) -> Result<Prepared<'a>> {
    prepare_on(src, inputs, false)
}

/// As [`prepare`]; `whole_grid` smooths the whole image instead of the boxes
/// of the inputs' structures only.
fn prepare_on<'a>(
    src: &ImageSource,
    inputs: &'a MappingInputs,
    whole_grid: bool,
) -> Result<Prepared<'a>> {
    src.check()?;
    let image = inputs.image(&src.image)?;
    let grid = inputs.grid();
    let data: Cow<'a, [f32]> = match &src.smoothing_fwhm_mm {
        Some(f) if !f.is_zero() => {
            if whole_grid {
                Cow::Owned(smooth_values(grid, image.as_slice(), f.0)?)
            } else {
                // Mappings read an image only inside the inputs' structures
                // (and SUVpeak spheres around them): smooth just there.
                let sphere_reach = match &src.normalization {
                    Normalization::SuvPeak { sphere_cm3, .. } => {
                        let r = sphere_radius_mm(*sphere_cm3);
                        let s = grid.spacing_mm();
                        [0, 1, 2].map(|a| (r / s[a]).ceil() as usize)
                    }
                    _ => [0; 3],
                };
                let windows: Vec<_> = inputs
                    .structure_windows()
                    .into_iter()
                    .map(|w| w.grown(sphere_reach, grid))
                    .collect();
                Cow::Owned(smooth_windows(grid, image.as_slice(), f.0, &windows)?)
            }
        }
        _ => Cow::Borrowed(image.as_slice()),
    };
    let name = src.image.clone();
    let (scale, offset) = match &src.normalization {
        Normalization::None => (1.0, 0.0),
        Normalization::SuvMax { region } => {
            let (_, max) = min_max_at(&data, inputs.region_indices(region)?);
            divide_by(&name, max, || {
                format!("SUVmax in region \"{region}\" is {max}; cannot normalise by it")
            })?
        }
        Normalization::SuvPeak { region, sphere_cm3 } => {
            let peak = suv_peak_of(grid, &data, inputs.region_indices(region)?, *sphere_cm3)?.value;
            divide_by(&name, peak, || {
                format!("SUVpeak in region \"{region}\" is {peak}; cannot normalise by it")
            })?
        }
        Normalization::ReferenceRatio { region, statistic } => {
            let idx = inputs.region_indices(region)?;
            let reference = match statistic {
                ReferenceStatistic::Mean => mean_at(&data, idx),
                ReferenceStatistic::Median => stats_at(&data, idx).median,
            };
            divide_by(&name, reference, || {
                format!(
                    "the {statistic:?} of reference region \"{region}\" is {reference}; a \
                     tumour-to-background ratio needs a positive background"
                )
            })?
        }
        Normalization::ZScore { region } => {
            let s = stats_at(&data, inputs.region_indices(region)?);
            if s.voxels < 2 || (s.std_dev.is_nan() || s.std_dev <= 0.0) {
                return Err(Error::region(
                    region,
                    format!(
                        "a z-score needs a reference region with at least 2 voxels and a \
                         positive standard deviation ({} voxels, sd {})",
                        s.voxels, s.std_dev
                    ),
                ));
            }
            (1.0 / s.std_dev, -s.mean / s.std_dev)
        }
        Normalization::Adc { unit } => {
            let f = unit.to_mm2_per_s();
            let (min, max) = min_max_at(&data, inputs.target_indices());
            if min * f < 0.0 || max * f > ADC_MAX_PLAUSIBLE_MM2_PER_S {
                return Err(Error::image(
                    &name,
                    format!(
                        "ADC inside the target spans {:.3e} to {:.3e} mm^2/s after converting \
                         from {unit:?}; expected 0 to {ADC_MAX_PLAUSIBLE_MM2_PER_S} mm^2/s \
                         (is the unit right?)",
                        min * f,
                        max * f
                    ),
                ));
            }
            (f, 0.0)
        }
    };
    Ok(Prepared {
        name,
        data,
        scale,
        offset,
    })
}

/// The scale and offset of a normalisation that divides `image` by a
/// reference value, which must be positive (`why` says what it is otherwise).
fn divide_by(image: &str, reference: f64, why: impl FnOnce() -> String) -> Result<(f64, f64)> {
    if reference.is_nan() || reference <= 0.0 {
        Err(Error::image(image, why()))
    } else {
        Ok((1.0 / reference, 0.0))
    }
}

/// Statistics of an image inside a region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegionStats {
    /// Number of voxels.
    pub voxels: usize,
    /// Volume in cm^3.
    pub volume_cm3: f64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for a single voxel).
    pub std_dev: f64,
    /// Minimum.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Maximum (SUVmax for an SUV image).
    pub max: f64,
}

/// Statistics of `image` inside `region`.
///
/// ```
/// use dosepaint_biomap::region_stats;
/// use dosepaint_core::{Grid, Structure, StructureRole, Volume};
/// let grid = Grid::new([4, 1, 1], [10.0; 3], [0.0; 3])?;
/// let img = Volume::from_vec(grid.clone(), vec![1.0f32, 2.0, 3.0, 10.0])?;
/// let roi = Structure::new("r", StructureRole::Other,
///     Volume::from_vec(grid, vec![true, true, true, false])?)?;
/// let s = region_stats(&img, &roi)?;
/// assert_eq!((s.voxels, s.mean, s.median, s.max), (3, 2.0, 2.0, 3.0));
/// assert!((s.std_dev - 1.0).abs() < 1e-12 && (s.volume_cm3 - 3.0).abs() < 1e-12);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
///
/// # Errors
/// Different grids, an empty region, or a non-finite value inside it.
pub fn region_stats(image: &Volume<f32>, region: &Structure) -> Result<RegionStats> {
    check_image_region(image, region)?;
    let mut s = stats_at(image.as_slice(), &region.voxel_indices());
    s.volume_cm3 = s.voxels as f64 * image.grid().voxel_volume_cm3();
    Ok(s)
}

fn check_image_region(image: &Volume<f32>, region: &Structure) -> Result<()> {
    image.grid().ensure_same(
        region.grid(),
        &format!("image vs region \"{}\"", region.name()),
    )?;
    region.ensure_not_empty("a region statistic")?;
    let mask = region.mask().as_slice();
    if let Some(n) = (0..mask.len()).find(|&n| mask[n] && !image.as_slice()[n].is_finite()) {
        return Err(Error::voxel(
            format!("image value inside region \"{}\"", region.name()),
            image.grid().voxel_index(n),
            format!("{} is not finite", image.as_slice()[n]),
        ));
    }
    Ok(())
}

/// Smallest and largest value over the given voxels (parallel; order does
/// not matter for min and max).
pub(crate) fn min_max_at(data: &[f32], indices: &[u32]) -> (f64, f64) {
    let (lo, hi) = indices
        .par_iter()
        .fold(
            || (f32::INFINITY, f32::NEG_INFINITY),
            |(lo, hi), &n| {
                let v = data[n as usize];
                (lo.min(v), hi.max(v))
            },
        )
        .reduce(
            || (f32::INFINITY, f32::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
    (f64::from(lo), f64::from(hi))
}

/// Mean over the given voxels (sequential f64 sum: the same bits every time).
pub(crate) fn mean_at(data: &[f32], indices: &[u32]) -> f64 {
    indices
        .iter()
        .map(|&n| f64::from(data[n as usize]))
        .sum::<f64>()
        / indices.len() as f64
}

/// Statistics over the given voxels.
pub(crate) fn stats_at(data: &[f32], indices: &[u32]) -> RegionStats {
    let mut values: Vec<f64> = indices
        .iter()
        .map(|&n| f64::from(data[n as usize]))
        .collect();
    let n = values.len();
    if n == 0 {
        return RegionStats {
            voxels: 0,
            volume_cm3: 0.0,
            mean: f64::NAN,
            std_dev: f64::NAN,
            min: f64::NAN,
            median: f64::NAN,
            max: f64::NAN,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let median = percentile(&mut values, 50.0);
    RegionStats {
        voxels: n,
        volume_cm3: 0.0,
        mean,
        std_dev: var.sqrt(),
        min,
        median,
        max,
    }
}

/// The `p`-th percentile (0..=100) with linear interpolation between order
/// statistics (the "linear" / type-7 definition); reorders `values`.
pub(crate) fn percentile(values: &mut [f64], p: f64) -> f64 {
    let n = values.len();
    debug_assert!(n > 0);
    let h = (n - 1) as f64 * p / 100.0;
    let lo = h.floor() as usize;
    let frac = h - lo as f64;
    let (_, lo_v, rest) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_v = *lo_v;
    if frac > 0.0 && !rest.is_empty() {
        let hi_v = rest.iter().copied().fold(f64::INFINITY, f64::min);
        lo_v + frac * (hi_v - lo_v)
    } else {
        lo_v
    }
}

/// SUVmax: the largest value of `image` inside `region`.
///
/// # Errors
/// As [`region_stats`].
pub fn suv_max(image: &Volume<f32>, region: &Structure) -> Result<f64> {
    Ok(region_stats(image, region)?.max)
}

/// SUVpeak and where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SuvPeak {
    /// The highest sphere mean.
    pub value: f64,
    /// Voxel `(i, j, k)` at the centre of that sphere.
    pub centre: [usize; 3],
    /// Number of voxels in the sphere (inside the grid) at that centre.
    pub sphere_voxels: usize,
}

/// SUVpeak: the highest mean of `image` over a sphere of `sphere_cm3` (1 cm^3,
/// radius 6.2 mm, in PERCIST 1.0: Wahl et al. 2009, J Nucl Med 50:122S) centred
/// on a voxel of `region`. The sphere holds the voxels whose centres lie within
/// its radius (in mm, so anisotropic spacing is honoured) and may reach beyond
/// the region; ties go to the first centre in memory order.
///
/// ```
/// use dosepaint_biomap::suv_peak;
/// use dosepaint_core::{Grid, Structure, StructureRole, Volume};
/// let grid = Grid::new([21, 21, 21], [2.0; 3], [0.0; 3])?;
/// // A hot spot peaking at voxel (10, 10, 10): 20 - 0.1 r^2 (r in voxels).
/// let img = Volume::from_fn(grid.clone(), |v| {
///     20.0 - 0.1 * v.iter().map(|&x| (x as f32 - 10.0).powi(2)).sum::<f32>()
/// });
/// let roi = Structure::new("GTV", StructureRole::Target, Volume::filled(grid, true))?;
/// let peak = suv_peak(&img, &roi, 1.0)?;
/// assert_eq!(peak.centre, [10, 10, 10]);
/// // The 1 cm^3 sphere (radius 6.2 mm = 3.1 voxels) averages the peak down
/// // below SUVmax = 20, but not below the value at its rim (20 - 0.1 x 3.1^2).
/// assert!(peak.value < 20.0 && peak.value > 19.0);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
///
/// # Errors
/// As [`region_stats`], plus a sphere volume that is not positive.
pub fn suv_peak(image: &Volume<f32>, region: &Structure, sphere_cm3: f64) -> Result<SuvPeak> {
    check_image_region(image, region)?;
    image.ensure_finite("image for SUVpeak")?;
    suv_peak_of(
        image.grid(),
        image.as_slice(),
        &region.voxel_indices(),
        sphere_cm3,
    )
}

/// Radius (mm) of a sphere of `volume_cm3`: `(3 V / (4 pi))^(1/3)`.
fn sphere_radius_mm(volume_cm3: f64) -> f64 {
    (3.0 * volume_cm3 * 1e3 / (4.0 * std::f64::consts::PI)).cbrt()
}

fn suv_peak_of(grid: &Grid, data: &[f32], centres: &[u32], sphere_cm3: f64) -> Result<SuvPeak> {
    crate::error::positive("SUVpeak sphere volume (cm^3)", sphere_cm3)?;
    if centres.is_empty() {
        return Err(Error::region("SUVpeak region", "holds no voxel"));
    }
    let radius_mm = sphere_radius_mm(sphere_cm3);
    let s = grid.spacing_mm();
    let reach = [0, 1, 2].map(|a| (radius_mm / s[a]).floor() as isize);
    let mut offsets = Vec::new();
    for dk in -reach[2]..=reach[2] {
        for dj in -reach[1]..=reach[1] {
            for di in -reach[0]..=reach[0] {
                let d2 = (di as f64 * s[0]).powi(2)
                    + (dj as f64 * s[1]).powi(2)
                    + (dk as f64 * s[2]).powi(2);
                if d2 <= radius_mm * radius_mm * (1.0 + 1e-12) {
                    offsets.push([di, dj, dk]);
                }
            }
        }
    }
    let dims = grid.dims();
    let best = centres
        .par_iter()
        .map(|&n| {
            let n = n as usize;
            let c = grid.voxel_index(n);
            let mut sum = 0.0;
            let mut count = 0usize;
            for o in &offsets {
                let v = [0, 1, 2].map(|a| c[a] as isize + o[a]);
                if (0..3).all(|a| v[a] >= 0 && (v[a] as usize) < dims[a]) {
                    let idx = grid.linear_index(v.map(|x| x as usize));
                    sum += f64::from(data[idx]);
                    count += 1;
                }
            }
            (sum / count as f64, n, count)
        })
        .reduce_with(|a, b| {
            if b.0 > a.0 || (b.0.total_cmp(&a.0).is_eq() && b.1 < a.1) {
                b
            } else {
                a
            }
        })
        .expect("at least one centre");
    Ok(SuvPeak {
        value: best.0,
        centre: grid.voxel_index(best.1),
        sphere_voxels: best.2,
    })
}

/// Tumour-to-background ratio: `image / stat(reference)` everywhere (e.g.
/// FMISO tumour-to-blood ratio, hypoxic where >= 1.2-1.4).
///
/// # Errors
/// As [`region_stats`], plus a background statistic that is not positive.
pub fn tumour_to_background(
    image: &Volume<f32>,
    reference: &Structure,
    statistic: ReferenceStatistic,
) -> Result<Volume<f32>> {
    let s = region_stats(image, reference)?;
    let r = match statistic {
        ReferenceStatistic::Mean => s.mean,
        ReferenceStatistic::Median => s.median,
    };
    if r.is_nan() || r <= 0.0 {
        return Err(Error::region(
            reference.name(),
            format!("background {statistic:?} is {r}; the ratio needs a positive background"),
        ));
    }
    Ok(image.map(|&v| (f64::from(v) / r) as f32))
}

/// Z-score against a reference region: `(image - mean) / sd` with the sample
/// standard deviation of the region.
///
/// # Errors
/// As [`region_stats`], plus a region of fewer than 2 voxels or zero spread.
pub fn z_score(image: &Volume<f32>, reference: &Structure) -> Result<Volume<f32>> {
    let s = region_stats(image, reference)?;
    if s.voxels < 2 || (s.std_dev.is_nan() || s.std_dev <= 0.0) {
        return Err(Error::region(
            reference.name(),
            format!(
                "a z-score needs at least 2 voxels and a positive spread ({} voxels, sd {})",
                s.voxels, s.std_dev
            ),
        ));
    }
    Ok(image.map(|&v| ((f64::from(v) - s.mean) / s.std_dev) as f32))
}

/// An ADC map converted to mm^2/s.
///
/// # Errors
/// A negative, non-finite or implausibly large converted value (above
/// [`ADC_MAX_PLAUSIBLE_MM2_PER_S`]): the first offending voxel is named.
pub fn adc_to_mm2_per_s(image: &Volume<f32>, unit: AdcUnit) -> Result<Volume<f32>> {
    let f = unit.to_mm2_per_s();
    if let Some(n) = image.as_slice().iter().position(|&v| {
        let x = f64::from(v) * f;
        !(x.is_finite() && (0.0..=ADC_MAX_PLAUSIBLE_MM2_PER_S).contains(&x))
    }) {
        return Err(Error::voxel(
            format!("ADC converted from {unit:?}"),
            image.grid().voxel_index(n),
            format!(
                "{} mm^2/s is outside 0..={ADC_MAX_PLAUSIBLE_MM2_PER_S} (is the unit right?)",
                f64::from(image.as_slice()[n]) * f
            ),
        ));
    }
    Ok(image.map(|&v| (f64::from(v) * f) as f32))
}

/// A value on an image's scale: a number, or a statistic of the prepared image
/// inside the painted target. In a spec: `1.2`, `"max"`, `"mean"`,
/// `{"percentile": 95}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Level {
    /// A fixed value.
    Value(f64),
    /// A statistic of the image inside the target.
    Statistic(TargetStatistic),
}

impl From<f64> for Level {
    fn from(v: f64) -> Self {
        Level::Value(v)
    }
}

/// A statistic of the prepared image over the target voxels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatistic {
    /// The minimum.
    Min,
    /// The maximum.
    Max,
    /// The mean.
    Mean,
    /// The median.
    Median,
    /// A percentile in 0..=100 (linear interpolation between order statistics).
    Percentile(f64),
}

impl Level {
    pub(crate) fn check(&self, what: &str) -> Result<()> {
        match *self {
            Level::Value(v) => crate::error::finite(what, v).map(|_| ()),
            Level::Statistic(TargetStatistic::Percentile(p)) => {
                if (0.0..=100.0).contains(&p) {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        what,
                        format!("percentile {p} is outside 0..=100"),
                    ))
                }
            }
            Level::Statistic(_) => Ok(()),
        }
    }

    /// Whether resolving needs the target values.
    pub(crate) fn needs_values(&self) -> bool {
        matches!(self, Level::Statistic(_))
    }

    /// The value, given the prepared image values inside the target (only
    /// read for statistics; may be reordered).
    pub(crate) fn resolve(&self, values: &mut [f64]) -> f64 {
        match *self {
            Level::Value(v) => v,
            Level::Statistic(s) => {
                if values.is_empty() {
                    return f64::NAN;
                }
                match s {
                    TargetStatistic::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                    TargetStatistic::Max => {
                        values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                    }
                    TargetStatistic::Mean => values.iter().sum::<f64>() / values.len() as f64,
                    TargetStatistic::Median => percentile(values, 50.0),
                    TargetStatistic::Percentile(p) => percentile(values, p),
                }
            }
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::Value(v) => write!(f, "{v}"),
            Level::Statistic(TargetStatistic::Percentile(p)) => write!(f, "P{p}(target)"),
            Level::Statistic(s) => write!(f, "{s:?}(target)"),
        }
    }
}

/// Resolves a set of levels against a prepared image inside the target.
pub(crate) fn resolve_levels<const N: usize>(
    levels: [&Level; N],
    image: &Prepared<'_>,
    target: &[u32],
) -> [f64; N] {
    let mut values = if levels.iter().any(|l| l.needs_values()) {
        image.values_at(target)
    } else {
        Vec::new()
    };
    levels.map(|l| l.resolve(&mut values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suvpeak_sphere_of_one_cm3_has_radius_6_2_mm() {
        // PERCIST 1.0 (Wahl et al. 2009, J Nucl Med 50:122S): a 1 cm^3 sphere,
        // "1.2 cm diameter", i.e. radius 6.2 mm.
        assert!((sphere_radius_mm(1.0) - 6.2).abs() < 0.01);
        // Volume scales with r^3: 8 cm^3 doubles the radius.
        assert!((sphere_radius_mm(8.0) - 2.0 * sphere_radius_mm(1.0)).abs() < 1e-12);
    }

    #[test]
    fn percentile_matches_type7() {
        // numpy.percentile([1, 2, 3, 4], 25) = 1.75 (linear interpolation)
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert!((percentile(&mut v, 25.0) - 1.75).abs() < 1e-12);
        assert!((percentile(&mut v, 100.0) - 4.0).abs() < 1e-12);
        assert!((percentile(&mut v, 0.0) - 1.0).abs() < 1e-12);
        assert!((percentile(&mut v, 50.0) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn mm3_serde_forms() {
        let one: Mm3 = serde_json::from_str("5").unwrap();
        assert_eq!(one, Mm3([5.0; 3]));
        let three: Mm3 = serde_json::from_str("[1, 2, 3]").unwrap();
        assert_eq!(three, Mm3([1.0, 2.0, 3.0]));
        assert_eq!(serde_json::to_string(&one).unwrap(), "5.0");
        assert_eq!(serde_json::to_string(&three).unwrap(), "[1.0,2.0,3.0]");
    }

    #[test]
    fn level_serde_forms() {
        let l: Level = serde_json::from_str("1.2").unwrap();
        assert_eq!(l, Level::Value(1.2));
        let l: Level = serde_json::from_str("\"max\"").unwrap();
        assert_eq!(l, Level::Statistic(TargetStatistic::Max));
        let l: Level = serde_json::from_str("{\"percentile\": 95}").unwrap();
        assert_eq!(l, Level::Statistic(TargetStatistic::Percentile(95.0)));
    }
}
