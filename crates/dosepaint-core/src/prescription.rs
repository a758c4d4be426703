//! The voxel-wise dose prescription.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Grid, Result, Volume};

/// Where a prescription came from: free text for people and a serialised
/// mapping specification for machines, so it can be reproduced exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Short description, e.g. `"linear DPbN from FMISO TBR, 70-84 Gy"`.
    pub description: String,
    /// The generating specification (typically JSON), opaque to core.
    pub spec: String,
}

/// A voxel-wise prescription in total course dose (Gy), with the number of
/// fractions alongside.
///
/// Voxels with a target dose above zero are *prescribed*; the optional
/// per-voxel minimum and maximum bound the acceptable dose (e.g. 95 % and
/// 107 % of the target). A uniform prescription is the special case of a
/// constant map.
///
/// ```
/// use dosepaint_core::{Grid, Prescription, Provenance, Volume};
/// let grid = Grid::new([2, 1, 1], [2.0; 3], [0.0; 3])?;
/// let target = Volume::from_vec(grid, vec![70.0f32, 84.0])?;
/// let rx = Prescription::new(target, 35, Provenance::default())?;
/// assert!((rx.dose_per_fraction_gy(1) - 2.4).abs() < 1e-6);
/// assert_eq!(rx.prescribed_voxels(), vec![0, 1]);
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PrescriptionSpec", into = "PrescriptionSpec")]
pub struct Prescription {
    target_gy: Volume<f32>,
    min_gy: Option<Volume<f32>>,
    max_gy: Option<Volume<f32>>,
    fractions: u32,
    provenance: Provenance,
}

#[derive(Serialize, Deserialize)]
struct PrescriptionSpec {
    target_gy: Volume<f32>,
    min_gy: Option<Volume<f32>>,
    max_gy: Option<Volume<f32>>,
    fractions: u32,
    provenance: Provenance,
}

impl TryFrom<PrescriptionSpec> for Prescription {
    type Error = Error;
    fn try_from(s: PrescriptionSpec) -> Result<Self> {
        let rx = Prescription::new(s.target_gy, s.fractions, s.provenance)?;
        match (s.min_gy, s.max_gy) {
            (Some(min), Some(max)) => rx.with_bounds(min, max),
            (None, None) => Ok(rx),
            _ => Err(Error::invalid(
                "prescription bounds",
                "give both the minimum and the maximum map, or neither",
            )),
        }
    }
}

impl From<Prescription> for PrescriptionSpec {
    fn from(p: Prescription) -> Self {
        PrescriptionSpec {
            target_gy: p.target_gy,
            min_gy: p.min_gy,
            max_gy: p.max_gy,
            fractions: p.fractions,
            provenance: p.provenance,
        }
    }
}

impl Prescription {
    /// A prescription from a target-dose map (Gy, total course).
    ///
    /// # Errors
    /// A non-finite or negative dose (the first offending voxel is named),
    /// zero fractions, or a map with no prescribed voxel.
    pub fn new(target_gy: Volume<f32>, fractions: u32, provenance: Provenance) -> Result<Self> {
        if fractions == 0 {
            return Err(Error::invalid("number of fractions", "must be at least 1"));
        }
        check_dose_map(&target_gy, "prescribed dose")?;
        if !target_gy.as_slice().par_iter().any(|&d| d > 0.0) {
            return Err(Error::Empty {
                what: "prescription".into(),
                reason: "no voxel has a prescribed dose above 0 Gy".into(),
            });
        }
        Ok(Self {
            target_gy,
            min_gy: None,
            max_gy: None,
            fractions,
            provenance,
        })
    }

    /// Adds per-voxel acceptable bounds (`min <= target <= max` in every
    /// prescribed voxel).
    ///
    /// # Errors
    /// Grid mismatch, non-finite or negative bounds, or a voxel whose bounds
    /// do not bracket its target.
    pub fn with_bounds(mut self, min_gy: Volume<f32>, max_gy: Volume<f32>) -> Result<Self> {
        let grid = self.grid().clone();
        grid.ensure_same(min_gy.grid(), "prescription minimum vs target")?;
        grid.ensure_same(max_gy.grid(), "prescription maximum vs target")?;
        check_dose_map(&min_gy, "minimum dose")?;
        check_dose_map(&max_gy, "maximum dose")?;
        let t = self.target_gy.as_slice();
        for (n, ((&lo, &hi), &d)) in min_gy
            .as_slice()
            .iter()
            .zip(max_gy.as_slice())
            .zip(t)
            .enumerate()
        {
            if d > 0.0 && !(lo <= d && d <= hi) {
                return Err(Error::invalid(
                    "prescription bounds",
                    format!(
                        "voxel {:?}: min {lo} Gy, target {d} Gy, max {hi} Gy are not ordered",
                        grid.voxel_index(n)
                    ),
                ));
            }
        }
        self.min_gy = Some(min_gy);
        self.max_gy = Some(max_gy);
        Ok(self)
    }

    /// Bounds at fixed fractions of the target (e.g. 0.95 and 1.07).
    ///
    /// # Errors
    /// If `lower > 1`, `upper < 1`, or either is not finite and positive.
    pub fn with_relative_bounds(self, lower: f32, upper: f32) -> Result<Self> {
        if !(lower.is_finite() && upper.is_finite() && lower > 0.0 && lower <= 1.0 && upper >= 1.0)
        {
            return Err(Error::invalid(
                "relative prescription bounds",
                format!("need 0 < lower <= 1 <= upper, got {lower} and {upper}"),
            ));
        }
        let min = self.target_gy.map(|&d| d * lower);
        let max = self.target_gy.map(|&d| d * upper);
        self.with_bounds(min, max)
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        self.target_gy.grid()
    }

    /// Target dose per voxel (Gy, total course; 0 outside the prescribed region).
    pub fn target_gy(&self) -> &Volume<f32> {
        &self.target_gy
    }

    /// Minimum acceptable dose per voxel, if set.
    pub fn min_gy(&self) -> Option<&Volume<f32>> {
        self.min_gy.as_ref()
    }

    /// Maximum acceptable dose per voxel, if set.
    pub fn max_gy(&self) -> Option<&Volume<f32>> {
        self.max_gy.as_ref()
    }

    /// Number of fractions.
    pub fn fractions(&self) -> u32 {
        self.fractions
    }

    /// Where the prescription came from.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Dose per fraction (Gy) at linear voxel index `n`: `D / n_fractions`.
    pub fn dose_per_fraction_gy(&self, n: usize) -> f64 {
        f64::from(self.target_gy.as_slice()[n]) / f64::from(self.fractions)
    }

    /// Linear indices of the prescribed voxels (target dose above 0), ascending.
    pub fn prescribed_voxels(&self) -> Vec<u32> {
        self.target_gy
            .as_slice()
            .iter()
            .enumerate()
            .filter(|(_, d)| **d > 0.0)
            .map(|(n, _)| n as u32)
            .collect()
    }
}

fn check_dose_map(v: &Volume<f32>, what: &str) -> Result<()> {
    // Parallel, but `position_first` keeps the reported voxel the first one.
    if let Some(n) = v
        .as_slice()
        .par_iter()
        .position_first(|d| !(d.is_finite() && *d >= 0.0))
    {
        return Err(Error::invalid(
            what,
            format!(
                "voxel {:?} holds {} Gy; doses must be finite and non-negative",
                v.grid().voxel_index(n),
                v.as_slice()[n]
            ),
        ));
    }
    Ok(())
}
