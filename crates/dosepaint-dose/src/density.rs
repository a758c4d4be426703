//! CT numbers to relative electron density, and the patient as the engine
//! sees it (density on the CT grid plus the patient position).

use dosepaint_core::{Grid, PatientPosition, Structure, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A piecewise-linear calibration curve from CT number (HU) to electron
/// density relative to water, constant beyond its end points.
///
/// ```
/// use dosepaint_dose::HuDensityCurve;
/// let curve = HuDensityCurve::default();
/// assert!((curve.density(0.0) - 1.0).abs() < 1e-12);
/// let mine = HuDensityCurve::new(vec![(-1000.0, 0.0), (0.0, 1.0), (2000.0, 2.0)])?;
/// assert!((mine.density(1000.0) - 1.5).abs() < 1e-12);
/// # Ok::<(), dosepaint_dose::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(f64, f64)>", into = "Vec<(f64, f64)>")]
pub struct HuDensityCurve {
    points: Vec<(f64, f64)>,
}

impl TryFrom<Vec<(f64, f64)>> for HuDensityCurve {
    type Error = Error;
    fn try_from(points: Vec<(f64, f64)>) -> Result<Self> {
        Self::new(points)
    }
}

impl From<HuDensityCurve> for Vec<(f64, f64)> {
    fn from(c: HuDensityCurve) -> Self {
        c.points
    }
}

impl Default for HuDensityCurve {
    /// A generic curve for a 120 kVp CT: air (-1000 HU) 0.001, water (0 HU)
    /// 1.0, then the bone branch through 1000 HU -> 1.58 and 3000 HU -> 2.74
    /// (slope 5.8e-4 per HU, typical of tissue-equivalent calibration
    /// phantoms, whose cortical-bone insert has about 1.69 at 1200 HU).
    /// A clinic must replace it by its own scanner's calibration.
    fn default() -> Self {
        Self {
            points: vec![(-1000.0, 0.001), (0.0, 1.0), (1000.0, 1.58), (3000.0, 2.74)],
        }
    }
}

impl HuDensityCurve {
    /// A curve through `(HU, relative electron density)` points.
    ///
    /// # Errors
    /// Fewer than two points, HU not strictly increasing, a non-finite value,
    /// a negative density, or a density that decreases with HU.
    pub fn new(points: Vec<(f64, f64)>) -> Result<Self> {
        if points.len() < 2 {
            return Err(Error::invalid(
                "HU -> density curve",
                format!("needs at least 2 points, got {}", points.len()),
            ));
        }
        for (n, &(h, d)) in points.iter().enumerate() {
            if !(h.is_finite() && d.is_finite() && d >= 0.0) {
                return Err(Error::invalid(
                    "HU -> density curve",
                    format!("point {n} = ({h} HU, {d}): values must be finite, density >= 0"),
                ));
            }
        }
        for (n, w) in points.windows(2).enumerate() {
            if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
                return Err(Error::invalid(
                    "HU -> density curve",
                    format!(
                        "points {n} and {}: HU must increase strictly and density must not decrease \
                         ({:?} then {:?})",
                        n + 1,
                        w[0],
                        w[1]
                    ),
                ));
            }
        }
        Ok(Self { points })
    }

    /// The `(HU, density)` points.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// Relative electron density at `hu` (linear between points, constant
    /// beyond the ends).
    pub fn density(&self, hu: f64) -> f64 {
        let p = &self.points;
        if hu <= p[0].0 {
            return p[0].1;
        }
        let last = p[p.len() - 1];
        if hu >= last.0 {
            return last.1;
        }
        let k = p.partition_point(|q| q.0 <= hu);
        let (a, b) = (p[k - 1], p[k]);
        a.1 + (b.1 - a.1) * (hu - a.0) / (b.0 - a.0)
    }
}

/// The patient as a dose engine sees it: relative electron density on the
/// CT grid (radiological depths are traced at this resolution) and the
/// patient position that orients the beams.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientModel {
    density: Volume<f32>,
    position: PatientPosition,
}

fn check_position(position: PatientPosition) -> Result<()> {
    use PatientPosition::{FFP, FFS, HFP, HFS};
    if matches!(position, HFS | HFP | FFS | FFP) {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "patient position {}: the dose engine handles HFS, HFP, FFS and FFP only",
            position.as_dicom()
        )))
    }
}

impl PatientModel {
    /// Converts a CT in HU with a calibration curve.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming the first voxel with a NaN or infinite
    /// HU; [`Error::Unsupported`] for a decubitus position.
    pub fn from_ct(
        ct_hu: &Volume<f32>,
        curve: &HuDensityCurve,
        position: PatientPosition,
    ) -> Result<Self> {
        check_position(position)?;
        if let Some(n) = ct_hu.as_slice().iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "CT number (HU)".into(),
                voxel: ct_hu.grid().voxel_index(n),
            });
        }
        let mut density = Volume::filled(ct_hu.grid().clone(), 0.0f32);
        density
            .as_slice_mut()
            .par_iter_mut()
            .zip(ct_hu.as_slice().par_iter())
            .for_each(|(d, &h)| *d = curve.density(f64::from(h)) as f32);
        Ok(Self { density, position })
    }

    /// Wraps a relative electron density volume.
    ///
    /// # Errors
    /// [`Error::NonFinite`] or [`Error::InvalidParameter`] for a NaN or
    /// negative density (naming the voxel); [`Error::Unsupported`] for a
    /// decubitus position.
    pub fn from_density(density: Volume<f32>, position: PatientPosition) -> Result<Self> {
        check_position(position)?;
        if let Some(n) = density.as_slice().iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "relative electron density".into(),
                voxel: density.grid().voxel_index(n),
            });
        }
        if let Some(n) = density.as_slice().iter().position(|v| *v < 0.0) {
            return Err(Error::invalid(
                "relative electron density",
                format!(
                    "{} at voxel {:?} is negative",
                    density.as_slice()[n],
                    density.grid().voxel_index(n)
                ),
            ));
        }
        Ok(Self { density, position })
    }

    /// Relative electron density on the CT grid.
    pub fn density(&self) -> &Volume<f32> {
        &self.density
    }

    /// The CT grid.
    pub fn grid(&self) -> &Grid {
        self.density.grid()
    }

    /// Patient position.
    pub fn position(&self) -> PatientPosition {
        self.position
    }
}

/// The rows of a dose-influence matrix: a dose grid (which may be coarser
/// than the CT) and the linear indices of the voxels to compute, ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct DoseRows {
    grid: Grid,
    voxels: Vec<u32>,
}

impl DoseRows {
    /// Rows for `voxels` (linear indices of `grid`, strictly ascending).
    ///
    /// # Errors
    /// An unsorted, duplicated or out-of-grid index, or an empty list.
    pub fn new(grid: Grid, voxels: Vec<u32>) -> Result<Self> {
        if voxels.is_empty() {
            return Err(Error::Empty {
                what: "dose rows".into(),
                reason: "no voxel to compute dose in".into(),
            });
        }
        if let Some(w) = voxels.windows(2).position(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "dose rows",
                format!(
                    "voxel indices must ascend strictly (rows {w} and {})",
                    w + 1
                ),
            ));
        }
        let last = *voxels.last().expect("not empty") as usize;
        if last >= grid.n_voxels() {
            return Err(Error::invalid(
                "dose rows",
                format!("voxel {last} outside a grid of {} voxels", grid.n_voxels()),
            ));
        }
        Ok(Self { grid, voxels })
    }

    /// Every voxel of `grid` (core's `Grid` holds at most `u32::MAX`
    /// voxels, so every index fits a row).
    pub fn all(grid: Grid) -> Result<Self> {
        let n = grid.n_voxels() as u32;
        Self::new(grid, (0..n).collect())
    }

    /// The voxels of `grid` whose centre lies inside any of `structures`
    /// (each resampled to `grid` by nearest neighbour).
    ///
    /// # Errors
    /// [`Error::Empty`] if no voxel is inside.
    pub fn inside_structures(grid: Grid, structures: &[&Structure]) -> Result<Self> {
        let mut on_grid = structures.iter().map(|s| s.resample(&grid));
        let voxels = match on_grid.next() {
            Some(first) => on_grid
                .try_fold(first, |union, s| union.union(&s))?
                .voxel_indices(),
            None => Vec::new(),
        };
        if voxels.is_empty() {
            return Err(Error::Empty {
                what: "dose rows".into(),
                reason: format!(
                    "none of the {} structures covers a voxel centre of the dose grid",
                    structures.len()
                ),
            });
        }
        Self::new(grid, voxels)
    }

    /// The voxels of `grid` inside the patient: relative electron density
    /// (trilinear from the CT grid) at least `min_density`.
    ///
    /// # Errors
    /// [`Error::Empty`] if no voxel qualifies, [`Error::InvalidParameter`]
    /// for a threshold that is not finite.
    pub fn inside_patient(grid: Grid, patient: &PatientModel, min_density: f64) -> Result<Self> {
        if !min_density.is_finite() {
            return Err(Error::invalid("minimum density", format!("{min_density}")));
        }
        let d = patient.density();
        let voxels: Vec<u32> = (0..grid.n_voxels() as u32)
            .into_par_iter()
            .filter(|&n| {
                let p = grid.voxel_center(grid.voxel_index(n as usize));
                d.sample_linear(p).is_some_and(|v| v >= min_density)
            })
            .collect();
        if voxels.is_empty() {
            return Err(Error::Empty {
                what: "dose rows".into(),
                reason: format!("no dose-grid voxel has density >= {min_density}"),
            });
        }
        Self::new(grid, voxels)
    }

    /// The dose grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Linear voxel index of each row.
    pub fn voxels(&self) -> &[u32] {
        &self.voxels
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.voxels.len()
    }

    /// Always false (rows are never empty).
    pub fn is_empty(&self) -> bool {
        self.voxels.is_empty()
    }
}
