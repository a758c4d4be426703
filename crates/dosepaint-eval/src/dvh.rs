//! Dose-volume histograms and the dose metrics read from them.

use dosepaint_core::{Structure, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::sample::{DOSE_REQUIREMENT, bad_voxel, dose_ok, ensure_same_grid};
use crate::{DoseSample, Error, Result};

/// Default DVH bin width, Gy (1 cGy, as in common treatment planning systems).
pub const DEFAULT_BIN_WIDTH_GY: f64 = 0.01;

/// The dose-volume histogram of one structure.
///
/// # Conventions
/// - **Bins.** Bin `k` holds the voxels with `k w <= D < (k + 1) w` (edges
///   anchored at 0 Gy, width `w`); the last bin is the one that holds the
///   maximum dose. [`Dvh::differential_cm3`] is the volume in each bin.
/// - **Cumulative DVH.** `V(D)`, the volume receiving at least `D`, is exact
///   at every bin edge (it is the volume of the voxels with dose `>= k w`).
///   Between edges the dose inside a bin is taken as uniformly spread, so
///   `V` is linear there; in the first and last occupied bins the spread is
///   clipped to the exact minimum and maximum voxel doses. Hence `V(Dmin)` is
///   the whole volume and `V(Dmax) = 0`: the curve ends at the true maximum,
///   not at the upper edge of the last bin, as in the DVH display of common
///   planning systems.
/// - **Dx.** `D_x%` (or `D_x cc`) is the minimum dose to the hottest `x %`
///   (or `x cm^3`) of the volume: the largest dose `D` with `V(D) >= x`,
///   found by inverting the piecewise-linear `V` (so linear interpolation
///   inside a bin; across a run of empty bins it is the upper end of the
///   plateau). `D0% = Dmax`, `D100% = Dmin`. The error of `Dx` against the
///   exact order statistic is below one bin width.
/// - **Min, max, mean** are exact (from the voxels, volume-weighted for the
///   mean), not read from the histogram.
///
/// ```
/// use dosepaint_eval::{DoseSample, Dvh};
/// // 100 equal voxels at 0.5, 1.5, ..., 99.5 Gy: a uniform dose spread.
/// let doses: Vec<f64> = (0..100).map(|i| i as f64 + 0.5).collect();
/// let sample = DoseSample::uniform("ramp", doses, 0.1)?;
/// let dvh = Dvh::new(&sample, 1.0)?;
/// assert!((dvh.volume_percent_at_dose(50.0)? - 50.0).abs() < 1e-9);
/// assert!((dvh.d50_gy() - 50.0).abs() < 1e-9);
/// assert!((dvh.max_gy() - 99.5).abs() < 1e-12);
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dvh {
    structure: String,
    n_voxels: usize,
    mean_gy: f64,
    histogram: Histogram,
}

impl Dvh {
    /// The DVH of a dose sample with bins of `bin_width_gy`.
    ///
    /// # Errors
    /// A bin width that is not positive and finite, or so small that more
    /// than [`crate::MAX_BINS`] bins would be needed.
    pub fn new(sample: &DoseSample, bin_width_gy: f64) -> Result<Self> {
        let histogram = Histogram::build(
            bin_width_gy,
            sample.min_gy(),
            sample.max_gy(),
            "DVH",
            sample.doses_gy(),
            sample.masses(),
        )?;
        Ok(Self {
            structure: sample.name().to_string(),
            n_voxels: sample.len(),
            mean_gy: sample.mean_gy(),
            histogram,
        })
    }

    /// The DVH of `structure` in `dose` (same grid), whole voxels.
    ///
    /// # Errors
    /// As [`DoseSample::from_structure`] and [`Dvh::new`].
    pub fn from_structure(
        dose: &Volume<f32>,
        structure: &Structure,
        bin_width_gy: f64,
    ) -> Result<Self> {
        Self::new(&DoseSample::from_structure(dose, structure)?, bin_width_gy)
    }

    /// The structure's name.
    pub fn structure(&self) -> &str {
        &self.structure
    }

    /// Number of voxels that went into the histogram.
    pub fn n_voxels(&self) -> usize {
        self.n_voxels
    }

    /// Bin width, Gy.
    pub fn bin_width_gy(&self) -> f64 {
        self.histogram.bin_width()
    }

    /// Number of bins (the last one holds the maximum dose).
    pub fn n_bins(&self) -> usize {
        self.histogram.differential().len()
    }

    /// Bin edges `k w`, `k = 0..=n_bins`, Gy.
    pub fn bin_edges_gy(&self) -> Vec<f64> {
        self.histogram.edges()
    }

    /// Differential DVH: volume (cm^3) in each bin.
    pub fn differential_cm3(&self) -> &[f64] {
        self.histogram.differential()
    }

    /// Differential DVH as a percentage of the structure volume per bin.
    pub fn differential_percent(&self) -> Vec<f64> {
        let t = self.total_volume_cm3();
        self.differential_cm3()
            .iter()
            .map(|v| 100.0 * v / t)
            .collect()
    }

    /// Cumulative DVH at the bin edges: the volume (cm^3) receiving at least
    /// `k w`, `k = 0..=n_bins` (first entry the whole volume, last 0).
    pub fn cumulative_cm3(&self) -> &[f64] {
        self.histogram.cumulative()
    }

    /// Cumulative DVH at the bin edges, % of the structure volume.
    pub fn cumulative_percent(&self) -> Vec<f64> {
        let t = self.total_volume_cm3();
        self.cumulative_cm3()
            .iter()
            .map(|v| 100.0 * v / t)
            .collect()
    }

    /// Structure volume, cm^3.
    pub fn total_volume_cm3(&self) -> f64 {
        self.histogram.total()
    }

    /// Minimum dose, Gy (exact).
    pub fn min_gy(&self) -> f64 {
        self.histogram.min()
    }

    /// Maximum dose, Gy (exact).
    pub fn max_gy(&self) -> f64 {
        self.histogram.max()
    }

    /// Volume-weighted mean dose, Gy (exact).
    pub fn mean_gy(&self) -> f64 {
        self.mean_gy
    }

    /// `V_D`: the volume (cm^3) receiving at least `dose_gy`.
    ///
    /// # Errors
    /// A dose that is not finite.
    pub fn volume_cm3_at_dose(&self, dose_gy: f64) -> Result<f64> {
        if !dose_gy.is_finite() {
            return Err(Error::invalid(
                "dose level of V_D",
                format!("{dose_gy} Gy is not finite"),
            ));
        }
        Ok(self.histogram.mass_at_or_above(dose_gy))
    }

    /// `V_D` as a percentage of the structure volume.
    ///
    /// # Errors
    /// A dose that is not finite.
    pub fn volume_percent_at_dose(&self, dose_gy: f64) -> Result<f64> {
        Ok(100.0 * self.volume_cm3_at_dose(dose_gy)? / self.total_volume_cm3())
    }

    /// `D_x%`: the minimum dose (Gy) to the hottest `percent` % of the volume.
    ///
    /// # Errors
    /// A percentage outside `[0, 100]`.
    pub fn dose_at_volume_percent(&self, percent: f64) -> Result<f64> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(Error::invalid(
                "volume of D_x%",
                format!("{percent} % is outside [0, 100]"),
            ));
        }
        Ok(self
            .histogram
            .quantile(percent / 100.0 * self.total_volume_cm3()))
    }

    /// `D_x cc`: the minimum dose (Gy) to the hottest `volume_cm3` cm^3.
    ///
    /// # Errors
    /// A volume that is negative, not finite, or larger than the structure.
    pub fn dose_at_volume_cm3(&self, volume_cm3: f64) -> Result<f64> {
        let total = self.total_volume_cm3();
        if !(volume_cm3.is_finite() && volume_cm3 >= 0.0) {
            return Err(Error::invalid(
                "volume of D_x cc",
                format!("{volume_cm3} cm^3 must be finite and >= 0"),
            ));
        }
        // Allow rounding in the summed volume (a request for exactly the
        // whole structure must succeed).
        if volume_cm3 > total * (1.0 + 1e-12) {
            return Err(Error::invalid(
                "volume of D_x cc",
                format!(
                    "{volume_cm3} cm^3 exceeds the volume of \"{}\" ({total} cm^3)",
                    self.structure
                ),
            ));
        }
        Ok(self.histogram.quantile(volume_cm3.min(total)))
    }

    /// `D2%` (near-maximum dose, ICRU 83), Gy.
    pub fn d2_gy(&self) -> f64 {
        self.histogram.quantile(0.02 * self.total_volume_cm3())
    }

    /// `D50%` (median dose), Gy.
    pub fn d50_gy(&self) -> f64 {
        self.histogram.quantile(0.50 * self.total_volume_cm3())
    }

    /// `D95%`, Gy.
    pub fn d95_gy(&self) -> f64 {
        self.histogram.quantile(0.95 * self.total_volume_cm3())
    }

    /// `D98%` (near-minimum dose, ICRU 83), Gy.
    pub fn d98_gy(&self) -> f64 {
        self.histogram.quantile(0.98 * self.total_volume_cm3())
    }

    /// ICRU 83 homogeneity index `(D2% - D98%) / D50%`; `None` when
    /// `D50% = 0`.
    pub fn homogeneity_index(&self) -> Option<f64> {
        let d50 = self.d50_gy();
        (d50 > 0.0).then(|| (self.d2_gy() - self.d98_gy()) / d50)
    }
}

/// The usual summary of a structure's dose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DoseStatistics {
    /// Structure name.
    pub structure: String,
    /// Number of voxels.
    pub n_voxels: usize,
    /// Volume, cm^3.
    pub volume_cm3: f64,
    /// Minimum dose, Gy.
    pub min_gy: f64,
    /// Volume-weighted mean dose, Gy.
    pub mean_gy: f64,
    /// Maximum dose, Gy.
    pub max_gy: f64,
    /// Near-maximum dose D2%, Gy.
    pub d2_gy: f64,
    /// Median dose D50%, Gy.
    pub d50_gy: f64,
    /// D95%, Gy.
    pub d95_gy: f64,
    /// Near-minimum dose D98%, Gy.
    pub d98_gy: f64,
    /// ICRU 83 homogeneity index `(D2 - D98) / D50` (`None` if D50 = 0).
    pub homogeneity_index: Option<f64>,
    /// gEUD with its exponent, if one was asked for.
    pub geud: Option<GeudValue>,
}

/// A gEUD value with the exponent it was computed with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeudValue {
    /// The exponent `a`.
    pub a: f64,
    /// gEUD, Gy.
    pub gy: f64,
}

impl DoseStatistics {
    /// Statistics from a sample and its DVH, with gEUD for exponent `geud_a`
    /// if given.
    ///
    /// # Errors
    /// A non-finite `geud_a`.
    pub fn new(sample: &DoseSample, dvh: &Dvh, geud_a: Option<f64>) -> Result<Self> {
        let geud = geud_a
            .map(|a| sample.geud_gy(a).map(|gy| GeudValue { a, gy }))
            .transpose()?;
        Ok(Self {
            structure: dvh.structure().to_string(),
            n_voxels: dvh.n_voxels(),
            volume_cm3: dvh.total_volume_cm3(),
            min_gy: dvh.min_gy(),
            mean_gy: dvh.mean_gy(),
            max_gy: dvh.max_gy(),
            d2_gy: dvh.d2_gy(),
            d50_gy: dvh.d50_gy(),
            d95_gy: dvh.d95_gy(),
            d98_gy: dvh.d98_gy(),
            homogeneity_index: dvh.homogeneity_index(),
            geud,
        })
    }

    /// Statistics of `structure` in `dose` (same grid).
    ///
    /// # Errors
    /// As [`DoseSample::from_structure`], [`Dvh::new`] and gEUD.
    pub fn compute(
        dose: &Volume<f32>,
        structure: &Structure,
        bin_width_gy: f64,
        geud_a: Option<f64>,
    ) -> Result<Self> {
        let sample = DoseSample::from_structure(dose, structure)?;
        let dvh = Dvh::new(&sample, bin_width_gy)?;
        Self::new(&sample, &dvh, geud_a)
    }
}

/// Conformity of a reference isodose to a target.
///
/// With `TV` the target volume, `PIV` the volume (within the body, or the
/// whole dose grid) receiving at least the reference dose and `TV_PIV` the
/// part of the target receiving it:
/// - Paddick conformity index `CI = TV_PIV^2 / (TV PIV)` (Paddick 2000,
///   J Neurosurg 93 suppl 3:219), 1 for a perfect fit, 0 when nothing of the
///   target is covered (also when `PIV = 0`);
/// - RTOG conformity index `PIV / TV` (Shaw et al. 1993);
/// - coverage `TV_PIV / TV` and selectivity `TV_PIV / PIV`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conformity {
    /// The reference isodose, Gy (voxels with dose `>=` it are inside).
    pub reference_isodose_gy: f64,
    /// `TV`, cm^3.
    pub target_volume_cm3: f64,
    /// `PIV`, cm^3.
    pub isodose_volume_cm3: f64,
    /// `TV_PIV`, cm^3.
    pub target_in_isodose_cm3: f64,
    /// Paddick conformity index.
    pub paddick: f64,
    /// RTOG conformity index `PIV / TV`.
    pub rtog: f64,
    /// `TV_PIV / TV`.
    pub coverage: f64,
    /// `TV_PIV / PIV` (0 when `PIV = 0`).
    pub selectivity: f64,
}

/// Conformity indices of the `reference_isodose_gy` isodose around `target`;
/// the isodose volume is counted inside `body` (plus the target itself) if
/// given, else on the whole dose grid.
///
/// ```
/// use dosepaint_core::{Grid, Structure, StructureRole, Volume};
/// let grid = Grid::new([10, 10, 10], [2.0; 3], [0.0; 3])?;
/// // Target: a 4 x 4 x 4 block; 60 Gy on a 5 x 4 x 4 block that contains it.
/// let target = Structure::new("PTV", StructureRole::Target,
///     Volume::from_fn(grid.clone(), |[i, j, k]| i < 4 && j < 4 && k < 4))?;
/// let dose = Volume::from_fn(grid, |[i, j, k]| if i < 5 && j < 4 && k < 4 { 60.0f32 } else { 10.0 });
/// let c = dosepaint_eval::conformity(&dose, &target, 60.0, None)?;
/// assert!((c.paddick - 0.8).abs() < 1e-12); // 64^2 / (64 * 80)
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
///
/// # Errors
/// Grid mismatch, an empty target, a reference dose that is not positive and
/// finite, or an invalid dose value in the counted region.
pub fn conformity(
    dose: &Volume<f32>,
    target: &Structure,
    reference_isodose_gy: f64,
    body: Option<&Structure>,
) -> Result<Conformity> {
    if !(reference_isodose_gy.is_finite() && reference_isodose_gy > 0.0) {
        return Err(Error::invalid(
            "reference isodose",
            format!("{reference_isodose_gy} Gy must be positive and finite"),
        ));
    }
    ensure_same_grid(
        dose.grid(),
        target.grid(),
        &format!("dose grid vs grid of target \"{}\"", target.name()),
    )?;
    if let Some(b) = body {
        ensure_same_grid(
            dose.grid(),
            b.grid(),
            &format!("dose grid vs grid of body \"{}\"", b.name()),
        )?;
    }
    target.ensure_not_empty("a conformity index")?;
    let voxel = dose.grid().voxel_volume_cm3();
    let t = target.mask().as_slice();
    let b = body.map(|b| b.mask().as_slice());
    let grid = dose.grid();
    // Integer counts per fixed chunk: exact and thread-count independent;
    // the first invalid dose (lowest index) is reported.
    const CHUNK: usize = 1 << 16;
    let parts: Vec<Result<[usize; 3]>> = dose
        .as_slice()
        .par_chunks(CHUNK)
        .zip(t.par_chunks(CHUNK))
        .enumerate()
        .map(|(c, (dc, tc))| {
            let bc = b.map(|b| &b[c * CHUNK..(c * CHUNK + dc.len())]);
            // Branch-free counting (it vectorises); an invalid dose sets a
            // flag and is located afterwards.
            let mut counts = [0usize; 3]; // TV, PIV, TV_PIV
            let mut invalid = false;
            for (j, (&d, &in_target)) in dc.iter().zip(tc).enumerate() {
                // The isodose volume is counted in the body (and always in
                // the target).
                let counted = in_target | bc.is_none_or(|bc| bc[j]);
                let d = f64::from(d);
                invalid |= counted & !dose_ok(d);
                #[allow(clippy::needless_bitwise_bool)] // branch-free on purpose
                let covered = counted & (d >= reference_isodose_gy);
                counts[0] += usize::from(in_target);
                counts[1] += usize::from(covered);
                counts[2] += usize::from(covered & in_target);
            }
            if invalid {
                let j = (0..dc.len())
                    .find(|&j| (tc[j] || bc.is_none_or(|bc| bc[j])) && !dose_ok(f64::from(dc[j])))
                    .expect("an invalid dose was flagged in this chunk");
                return Err(bad_voxel(
                    "dose",
                    "dose (conformity index)",
                    grid,
                    c * CHUNK + j,
                    f64::from(dc[j]),
                    DOSE_REQUIREMENT,
                ));
            }
            Ok(counts)
        })
        .collect();
    let (mut tv, mut piv, mut tv_piv) = (0usize, 0usize, 0usize);
    for p in parts {
        let [a, b, c] = p?;
        tv += a;
        piv += b;
        tv_piv += c;
    }
    let (tv, piv, tv_piv) = (tv as f64, piv as f64, tv_piv as f64);
    Ok(Conformity {
        reference_isodose_gy,
        target_volume_cm3: tv * voxel,
        isodose_volume_cm3: piv * voxel,
        target_in_isodose_cm3: tv_piv * voxel,
        paddick: if piv > 0.0 {
            tv_piv * tv_piv / (tv * piv)
        } else {
            0.0
        },
        rtog: piv / tv,
        coverage: tv_piv / tv,
        selectivity: if piv > 0.0 { tv_piv / piv } else { 0.0 },
    })
}
