//! Physical objectives: squared deviation from a prescription map, piecewise
//! quadratic under/overdose, smooth maximum and minimum dose, mean dose and
//! dose-volume (DVH) objectives.

use dosepaint_core::{DoseInfluence, Prescription, Structure, Volume};
use serde::{Deserialize, Serialize};

use crate::error::{non_negative, positive};
use crate::objective::{
    CurvatureKind, Objective, Scratch, map_at_rows, structure_rows, voxel_of_row,
};
use crate::{Error, Result};

/// Which side of a limit is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sense {
    /// The quantity must stay at or below the limit.
    AtMost,
    /// The quantity must stay at or above the limit.
    AtLeast,
}

impl Sense {
    /// `<=` or `>=`, for names.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::AtMost => "<=",
            Self::AtLeast => ">=",
        }
    }

    /// +1 for [`Sense::AtMost`], -1 for [`Sense::AtLeast`]: the sign of
    /// `d excess / d value`.
    pub(crate) fn sign(self) -> f64 {
        match self {
            Self::AtMost => 1.0,
            Self::AtLeast => -1.0,
        }
    }

    /// How far `value` lies on the wrong side of `limit` (negative when the
    /// limit is met).
    pub(crate) fn excess(self, value: f64, limit: f64) -> f64 {
        match self {
            Self::AtMost => value - limit,
            Self::AtLeast => limit - value,
        }
    }
}

/// The one-sided quadratic penalty `max(0, e)^2` of an excess `e`.
pub(crate) fn squared_excess(e: f64) -> f64 {
    if e > 0.0 { e * e } else { 0.0 }
}

/// How [`SquaredDeviation`] measures the deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deviation {
    /// `(d_i - p_i)^2` in Gy^2.
    Absolute,
    /// `((d_i - p_i) / p_i)^2`, dimensionless: every voxel counts by its
    /// relative error, as the quality factor does.
    Relative,
}

/// Voxel-wise squared deviation from a prescription map, the heart of dose
/// painting by numbers:
///
/// `f = (1/N) sum_i (d_i - p_i)^2` (absolute, Gy^2) or
/// `f = (1/N) sum_i ((d_i - p_i) / p_i)^2` (relative),
/// over the `N` rows of the structure.
///
/// ```
/// use dosepaint_core::{BeamGrid, BeamletLayout, DoseInfluence, Grid, Structure, StructureRole, Volume};
/// use dosepaint_optim::{Objective, SquaredDeviation};
/// let grid = Grid::new([2, 1, 1], [1.0; 3], [0.0; 3])?;
/// let layout = BeamletLayout::full(vec![BeamGrid { n_rows: 1, n_cols: 1, x0_mm: 0.0, y0_mm: 0.0 }], 5.0, 5.0)?;
/// let d = DoseInfluence::from_triplets(grid.clone(), vec![0, 1], layout, vec![(0, 0, 1.0), (1, 0, 1.0)])?;
/// let ptv = Structure::new("PTV", StructureRole::Target, Volume::filled(grid, true))?;
/// let obj = SquaredDeviation::uniform(&d, &ptv, 60.0)?;
/// let mut grad = vec![0.0; 2];
/// let f = obj.value_and_gradient(&[58.0, 61.0], 1.0, &mut grad);
/// assert!((f - 2.5).abs() < 1e-12); // (4 + 1) / 2
/// assert!((grad[0] + 2.0).abs() < 1e-12); // 2 (58 - 60) / 2
/// # Ok::<(), dosepaint_optim::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SquaredDeviation {
    name: String,
    rows: Vec<u32>,
    prescribed_gy: Vec<f64>,
    deviation: Deviation,
}

impl SquaredDeviation {
    /// Deviation from the prescription map `rx` over the voxels of
    /// `structure`.
    ///
    /// # Errors
    /// Grid mismatch, an empty structure, or (relative deviation) a voxel of
    /// the structure without a prescribed dose.
    pub fn to_prescription(
        influence: &DoseInfluence,
        structure: &Structure,
        rx: &Prescription,
        deviation: Deviation,
    ) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        let prescribed = map_at_rows(influence, &rows, rx.target_gy(), "prescribed dose")?;
        if deviation == Deviation::Relative
            && let Some(k) = prescribed.iter().position(|&p| p <= 0.0)
        {
            return Err(Error::invalid(
                format!("prescription over structure \"{}\"", structure.name()),
                format!(
                    "voxel {:?} has no prescribed dose; a relative deviation needs one in every voxel",
                    voxel_of_row(influence, rows[k])
                ),
            ));
        }
        Self::from_rows(
            format!("{} squared deviation", structure.name()),
            rows,
            prescribed,
            deviation,
        )
    }

    /// Absolute deviation from one dose `dose_gy` over `structure`.
    ///
    /// # Errors
    /// As [`SquaredDeviation::to_prescription`], or a negative or non-finite dose.
    pub fn uniform(influence: &DoseInfluence, structure: &Structure, dose_gy: f64) -> Result<Self> {
        non_negative("prescribed dose (Gy)", dose_gy)?;
        let rows = structure_rows(influence, structure)?;
        let n = rows.len();
        Self::from_rows(
            format!("{} squared deviation", structure.name()),
            rows,
            vec![dose_gy; n],
            Deviation::Absolute,
        )
    }

    /// From explicit rows and prescribed doses (one per row).
    ///
    /// # Errors
    /// Lengths differ, a dose is negative or not finite, or (relative) zero.
    pub fn from_rows(
        name: impl Into<String>,
        rows: Vec<u32>,
        prescribed_gy: Vec<f64>,
        deviation: Deviation,
    ) -> Result<Self> {
        let name = name.into();
        Self::check(&name, &rows, &prescribed_gy, deviation)?;
        Ok(Self {
            name,
            rows,
            prescribed_gy,
            deviation,
        })
    }

    /// The checks of [`SquaredDeviation::from_rows`] (also run by
    /// [`Objective::validate`], for objectives read with serde).
    fn check(name: &str, rows: &[u32], prescribed_gy: &[f64], deviation: Deviation) -> Result<()> {
        if rows.len() != prescribed_gy.len() {
            return Err(Error::length(
                format!("prescribed doses of \"{name}\""),
                rows.len(),
                prescribed_gy.len(),
            ));
        }
        for (k, &p) in prescribed_gy.iter().enumerate() {
            let ok = match deviation {
                Deviation::Absolute => p.is_finite() && p >= 0.0,
                Deviation::Relative => p.is_finite() && p > 0.0,
            };
            if !ok {
                return Err(Error::invalid(
                    format!("prescribed dose of \"{name}\""),
                    format!(
                        "row {} holds {p} Gy; it must be finite and {}",
                        rows[k],
                        if deviation == Deviation::Relative {
                            "positive for a relative deviation"
                        } else {
                            "non-negative"
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The same objective under another name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Prescribed dose of each row (Gy).
    pub fn prescribed_gy(&self) -> &[f64] {
        &self.prescribed_gy
    }

    /// How the deviation is measured.
    pub fn deviation(&self) -> Deviation {
        self.deviation
    }

    fn kernel(&self, dose: &[f64], grad: Option<(&mut [f64], f64)>) -> f64 {
        let inv_n = 1.0 / self.rows.len() as f64;
        let mut sum = 0.0;
        match (self.deviation, grad) {
            (Deviation::Absolute, None) => {
                for (&r, &p) in self.rows.iter().zip(&self.prescribed_gy) {
                    let e = dose[r as usize] - p;
                    sum += e * e;
                }
            }
            (Deviation::Absolute, Some((g, w))) => {
                let s = 2.0 * w * inv_n;
                for (&r, &p) in self.rows.iter().zip(&self.prescribed_gy) {
                    let e = dose[r as usize] - p;
                    sum += e * e;
                    g[r as usize] += s * e;
                }
            }
            (Deviation::Relative, None) => {
                for (&r, &p) in self.rows.iter().zip(&self.prescribed_gy) {
                    let e = dose[r as usize] / p - 1.0;
                    sum += e * e;
                }
            }
            (Deviation::Relative, Some((g, w))) => {
                let s = 2.0 * w * inv_n;
                for (&r, &p) in self.rows.iter().zip(&self.prescribed_gy) {
                    let e = dose[r as usize] / p - 1.0;
                    sum += e * e;
                    g[r as usize] += s * e / p;
                }
            }
        }
        sum * inv_n
    }
}

impl Objective for SquaredDeviation {
    fn name(&self) -> &str {
        &self.name
    }

    fn rows(&self) -> &[u32] {
        &self.rows
    }

    fn value_and_gradient(&self, dose_rows: &[f64], weight: f64, grad_rows: &mut [f64]) -> f64 {
        self.kernel(dose_rows, Some((grad_rows, weight)))
    }

    fn value(&self, dose_rows: &[f64]) -> f64 {
        self.kernel(dose_rows, None)
    }

    fn add_curvature(&self, _: &[f64], weight: f64, curvature_rows: &mut [f64]) -> CurvatureKind {
        let s = 2.0 * weight / self.rows.len() as f64;
        for (&r, &p) in self.rows.iter().zip(&self.prescribed_gy) {
            curvature_rows[r as usize] += match self.deviation {
                Deviation::Absolute => s,
                Deviation::Relative => s / (p * p),
            };
        }
        CurvatureKind::PiecewiseQuadratic
    }

    fn mean_prescribed_dose(&self) -> Option<f64> {
        Some(self.prescribed_gy.iter().sum::<f64>() / self.prescribed_gy.len() as f64)
    }

    fn validate(&self, n_rows: usize) -> Result<()> {
        crate::objective::check_rows(&self.name, &self.rows, n_rows)?;
        Self::check(&self.name, &self.rows, &self.prescribed_gy, self.deviation)
    }
}

/// Piecewise-quadratic underdose and overdose with per-voxel thresholds:
///
/// `f = (1/N) sum_i [ w_cold max(0, u_i - d_i)^2 + w_hot max(0, d_i - o_i)^2 ]`
///
/// with underdose thresholds `u_i` and overdose thresholds `o_i` (either side
/// may be absent). The cold side has its own weight `w_cold`, because cold
/// spots decide tumour control. Dose painting by contours (one threshold per
/// SIB level), uniform organ limits and voxel-wise DPbN windows (e.g. 95 % and
/// 105 % of the painted dose) all take this one form.
///
/// ```
/// use dosepaint_core::{BeamGrid, BeamletLayout, DoseInfluence, Grid, Structure, StructureRole, Volume};
/// use dosepaint_optim::{DoseLimits, Objective};
/// let grid = Grid::new([2, 1, 1], [1.0; 3], [0.0; 3])?;
/// let layout = BeamletLayout::full(vec![BeamGrid { n_rows: 1, n_cols: 1, x0_mm: 0.0, y0_mm: 0.0 }], 5.0, 5.0)?;
/// let d = DoseInfluence::from_triplets(grid.clone(), vec![0, 1], layout, vec![(0, 0, 1.0), (1, 0, 1.0)])?;
/// let cord = Structure::new("Cord", StructureRole::OrganAtRisk, Volume::filled(grid, true))?;
/// let obj = DoseLimits::overdose(&d, &cord, 45.0)?;
/// assert!((obj.value(&[40.0, 47.0]) - 2.0).abs() < 1e-12); // (0 + 2^2) / 2
/// # Ok::<(), dosepaint_optim::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseLimits {
    name: String,
    rows: Vec<u32>,
    under_gy: Option<Vec<f64>>,
    over_gy: Option<Vec<f64>>,
    cold_weight: f64,
    hot_weight: f64,
}

impl DoseLimits {
    /// Overdose above `limit_gy` over `structure`.
    ///
    /// # Errors
    /// Empty structure, grid mismatch, a negative or non-finite limit.
    pub fn overdose(
        influence: &DoseInfluence,
        structure: &Structure,
        limit_gy: f64,
    ) -> Result<Self> {
        Self::uniform(influence, structure, None, Some(limit_gy))
            .map(|o| o.named(format!("{} overdose > {limit_gy} Gy", structure.name())))
    }

    /// Underdose below `limit_gy` over `structure`.
    ///
    /// # Errors
    /// As [`DoseLimits::overdose`].
    pub fn underdose(
        influence: &DoseInfluence,
        structure: &Structure,
        limit_gy: f64,
    ) -> Result<Self> {
        Self::uniform(influence, structure, Some(limit_gy), None)
            .map(|o| o.named(format!("{} underdose < {limit_gy} Gy", structure.name())))
    }

    /// Uniform thresholds (either may be absent) over `structure`.
    ///
    /// # Errors
    /// As [`DoseLimits::overdose`], no threshold at all, or `under > over`.
    pub fn uniform(
        influence: &DoseInfluence,
        structure: &Structure,
        under_gy: Option<f64>,
        over_gy: Option<f64>,
    ) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        let n = rows.len();
        Self::from_rows(
            format!("{} dose limits", structure.name()),
            rows,
            under_gy.map(|u| vec![u; n]),
            over_gy.map(|o| vec![o; n]),
        )
    }

    /// Per-voxel thresholds from dose maps on the matrix's grid (e.g. the
    /// minimum and maximum maps of a [`Prescription`]).
    ///
    /// # Errors
    /// Grid mismatch, empty structure, a negative or non-finite threshold, or
    /// a voxel whose underdose threshold exceeds its overdose threshold.
    pub fn from_maps(
        influence: &DoseInfluence,
        structure: &Structure,
        under_gy: Option<&Volume<f32>>,
        over_gy: Option<&Volume<f32>>,
    ) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        let under = under_gy
            .map(|m| map_at_rows(influence, &rows, m, "underdose threshold"))
            .transpose()?;
        let over = over_gy
            .map(|m| map_at_rows(influence, &rows, m, "overdose threshold"))
            .transpose()?;
        if let (Some(u), Some(o)) = (&under, &over)
            && let Some(k) = u.iter().zip(o).position(|(u, o)| u > o)
        {
            return Err(Error::Contradictory(format!(
                "structure \"{}\", voxel {:?}: underdose threshold {} Gy is above the overdose threshold {} Gy",
                structure.name(),
                voxel_of_row(influence, rows[k]),
                u[k],
                o[k]
            )));
        }
        Self::from_rows(
            format!("{} dose limits", structure.name()),
            rows,
            under,
            over,
        )
    }

    /// Thresholds at fractions of the painted prescription, e.g. `0.95` and
    /// `1.05`: `u_i = under_fraction p_i`, `o_i = over_fraction p_i`.
    ///
    /// # Errors
    /// As [`DoseLimits::from_maps`], or fractions that are negative, not
    /// finite, or with `under_fraction > over_fraction`.
    pub fn around_prescription(
        influence: &DoseInfluence,
        structure: &Structure,
        rx: &Prescription,
        under_fraction: Option<f64>,
        over_fraction: Option<f64>,
    ) -> Result<Self> {
        if let Some(f) = under_fraction {
            non_negative("underdose fraction", f)?;
        }
        if let Some(f) = over_fraction {
            non_negative("overdose fraction", f)?;
        }
        if let (Some(u), Some(o)) = (under_fraction, over_fraction)
            && u > o
        {
            return Err(Error::Contradictory(format!(
                "underdose fraction {u} is above the overdose fraction {o}"
            )));
        }
        let rows = structure_rows(influence, structure)?;
        let p = map_at_rows(influence, &rows, rx.target_gy(), "prescribed dose")?;
        Self::from_rows(
            format!("{} window around prescription", structure.name()),
            rows,
            under_fraction.map(|f| p.iter().map(|p| p * f).collect()),
            over_fraction.map(|f| p.iter().map(|p| p * f).collect()),
        )
    }

    /// The prescription's own minimum and maximum maps as thresholds.
    ///
    /// # Errors
    /// As [`DoseLimits::from_maps`], or a prescription without bounds.
    pub fn prescription_bounds(
        influence: &DoseInfluence,
        structure: &Structure,
        rx: &Prescription,
    ) -> Result<Self> {
        let (Some(min), Some(max)) = (rx.min_gy(), rx.max_gy()) else {
            return Err(Error::invalid(
                "prescription",
                "has no minimum/maximum maps (use Prescription::with_bounds or around_prescription)",
            ));
        };
        Self::from_maps(influence, structure, Some(min), Some(max))
            .map(|o| o.named(format!("{} prescription bounds", structure.name())))
    }

    /// From explicit rows and thresholds (one per row).
    ///
    /// # Errors
    /// Lengths differ, no threshold, a threshold negative or not finite, or
    /// `under > over` in a row.
    pub fn from_rows(
        name: impl Into<String>,
        rows: Vec<u32>,
        under_gy: Option<Vec<f64>>,
        over_gy: Option<Vec<f64>>,
    ) -> Result<Self> {
        let name = name.into();
        Self::check(&name, &rows, under_gy.as_deref(), over_gy.as_deref())?;
        Ok(Self {
            name,
            rows,
            under_gy,
            over_gy,
            cold_weight: 1.0,
            hot_weight: 1.0,
        })
    }

    /// The checks of [`DoseLimits::from_rows`] (also run by
    /// [`Objective::validate`], for objectives read with serde).
    fn check(
        name: &str,
        rows: &[u32],
        under_gy: Option<&[f64]>,
        over_gy: Option<&[f64]>,
    ) -> Result<()> {
        if under_gy.is_none() && over_gy.is_none() {
            return Err(Error::invalid(
                format!("dose limits \"{name}\""),
                "give an underdose threshold, an overdose threshold or both",
            ));
        }
        for (side, t) in [("underdose", under_gy), ("overdose", over_gy)] {
            let Some(t) = t else { continue };
            if t.len() != rows.len() {
                return Err(Error::length(
                    format!("{side} thresholds of \"{name}\""),
                    rows.len(),
                    t.len(),
                ));
            }
            if let Some(k) = t.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(Error::invalid(
                    format!("{side} threshold of \"{name}\""),
                    format!(
                        "row {} holds {} Gy; must be finite and non-negative",
                        rows[k], t[k]
                    ),
                ));
            }
        }
        if let (Some(u), Some(o)) = (under_gy, over_gy)
            && let Some(k) = u.iter().zip(o).position(|(u, o)| u > o)
        {
            return Err(Error::Contradictory(format!(
                "\"{name}\", row {}: underdose threshold {} Gy is above the overdose threshold {} Gy",
                rows[k], u[k], o[k]
            )));
        }
        Ok(())
    }

    /// Separate weights of the cold (underdose) and hot (overdose) sides
    /// (both default to 1).
    ///
    /// # Errors
    /// A negative or non-finite weight.
    pub fn with_side_weights(mut self, cold: f64, hot: f64) -> Result<Self> {
        self.cold_weight = non_negative("cold-side weight", cold)?;
        self.hot_weight = non_negative("hot-side weight", hot)?;
        Ok(self)
    }

    /// The same objective under another name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Underdose threshold per row, if any.
    pub fn under_gy(&self) -> Option<&[f64]> {
        self.under_gy.as_deref()
    }

    /// Overdose threshold per row, if any.
    pub fn over_gy(&self) -> Option<&[f64]> {
        self.over_gy.as_deref()
    }

    fn kernel(&self, dose: &[f64], mut grad: Option<(&mut [f64], f64)>) -> f64 {
        let inv_n = 1.0 / self.rows.len() as f64;
        let mut cold = 0.0;
        let mut hot = 0.0;
        if let Some(u) = &self.under_gy {
            let s = 2.0 * self.cold_weight * inv_n;
            for (&r, &t) in self.rows.iter().zip(u) {
                let e = t - dose[r as usize];
                if e > 0.0 {
                    cold += e * e;
                    if let Some((g, w)) = grad.as_mut() {
                        g[r as usize] -= *w * s * e;
                    }
                }
            }
        }
        if let Some(o) = &self.over_gy {
            let s = 2.0 * self.hot_weight * inv_n;
            for (&r, &t) in self.rows.iter().zip(o) {
                let e = dose[r as usize] - t;
                if e > 0.0 {
                    hot += e * e;
                    if let Some((g, w)) = grad.as_mut() {
                        g[r as usize] += *w * s * e;
                    }
                }
            }
        }
        (self.cold_weight * cold + self.hot_weight * hot) * inv_n
    }
}

impl Objective for DoseLimits {
    fn name(&self) -> &str {
        &self.name
    }

    fn rows(&self) -> &[u32] {
        &self.rows
    }

    fn value_and_gradient(&self, dose_rows: &[f64], weight: f64, grad_rows: &mut [f64]) -> f64 {
        self.kernel(dose_rows, Some((grad_rows, weight)))
    }

    fn value(&self, dose_rows: &[f64]) -> f64 {
        self.kernel(dose_rows, None)
    }

    fn add_curvature(
        &self,
        dose: &[f64],
        weight: f64,
        curvature_rows: &mut [f64],
    ) -> CurvatureKind {
        let inv_n = 1.0 / self.rows.len() as f64;
        if let Some(u) = &self.under_gy {
            let s = 2.0 * weight * self.cold_weight * inv_n;
            for (&r, &t) in self.rows.iter().zip(u) {
                if dose[r as usize] < t {
                    curvature_rows[r as usize] += s;
                }
            }
        }
        if let Some(o) = &self.over_gy {
            let s = 2.0 * weight * self.hot_weight * inv_n;
            for (&r, &t) in self.rows.iter().zip(o) {
                if dose[r as usize] > t {
                    curvature_rows[r as usize] += s;
                }
            }
        }
        CurvatureKind::PiecewiseQuadratic
    }

    fn validate(&self, n_rows: usize) -> Result<()> {
        crate::objective::check_rows(&self.name, &self.rows, n_rows)?;
        non_negative("cold-side weight", self.cold_weight)?;
        non_negative("hot-side weight", self.hot_weight)?;
        Self::check(
            &self.name,
            &self.rows,
            self.under_gy.as_deref(),
            self.over_gy.as_deref(),
        )
    }
}

/// Log-sum-exp of the doses of `rows` at temperature `tau` (`sign = 1`: a
/// smooth maximum, `>= max`; `sign = -1`: a smooth minimum, `<= min`), and
/// the normaliser needed for its gradient `exp(sign (d_i - M) / tau)`.
fn soft_extreme(rows: &[u32], dose: &[f64], tau: f64, sign: f64) -> f64 {
    let mut m = f64::NEG_INFINITY;
    for &r in rows {
        m = m.max(sign * dose[r as usize]);
    }
    let mut s = 0.0;
    for &r in rows {
        s += ((sign * dose[r as usize] - m) / tau).exp();
    }
    sign * (m + tau * s.ln())
}

/// A smooth maximum-dose penalty:
///
/// `M = tau ln sum_i exp(d_i / tau)` (log-sum-exp, a smooth upper bound of the
/// maximum: `max <= M <= max + tau ln N`), `f = max(0, M - D_max)^2` (Gy^2).
///
/// `tau` (Gy, the softness) trades smoothness for tightness; 1 Gy is the
/// default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxDose {
    name: String,
    rows: Vec<u32>,
    limit_gy: f64,
    softness_gy: f64,
}

/// A smooth minimum-dose penalty:
///
/// `m = -tau ln sum_i exp(-d_i / tau)` (a smooth lower bound of the minimum),
/// `f = max(0, D_min - m)^2` (Gy^2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinDose {
    name: String,
    rows: Vec<u32>,
    limit_gy: f64,
    softness_gy: f64,
}

macro_rules! extreme_dose {
    ($ty:ident, $sign:expr, $label:expr) => {
        impl $ty {
            /// +1 for the maximum, -1 for the minimum.
            const SIGN: f64 = $sign;

            /// The penalty over `structure` with limit `limit_gy` and softness
            /// 1 Gy.
            ///
            /// # Errors
            /// Empty structure, grid mismatch, a negative or non-finite limit.
            pub fn new(
                influence: &DoseInfluence,
                structure: &Structure,
                limit_gy: f64,
            ) -> Result<Self> {
                let rows = structure_rows(influence, structure)?;
                Self::from_rows(
                    format!("{} {} {limit_gy} Gy", structure.name(), $label),
                    rows,
                    limit_gy,
                )
            }

            /// From explicit rows.
            ///
            /// # Errors
            /// A negative or non-finite limit.
            pub fn from_rows(
                name: impl Into<String>,
                rows: Vec<u32>,
                limit_gy: f64,
            ) -> Result<Self> {
                Ok(Self {
                    name: name.into(),
                    rows,
                    limit_gy: non_negative("dose limit (Gy)", limit_gy)?,
                    softness_gy: 1.0,
                })
            }

            /// Sets the softness `tau` (Gy).
            ///
            /// # Errors
            /// A non-positive or non-finite softness.
            pub fn with_softness(mut self, softness_gy: f64) -> Result<Self> {
                self.softness_gy = positive("softness (Gy)", softness_gy)?;
                Ok(self)
            }

            /// The same objective under another name.
            #[must_use]
            pub fn named(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }

            /// The smooth extreme (log-sum-exp) of the doses of its rows, Gy.
            pub fn smooth_extreme_gy(&self, dose_rows: &[f64]) -> f64 {
                soft_extreme(&self.rows, dose_rows, self.softness_gy, Self::SIGN)
            }

            /// Signed excess of the smooth extreme over the limit (> 0 is
            /// penalized).
            fn excess(&self, dose: &[f64]) -> (f64, f64) {
                let m = self.smooth_extreme_gy(dose);
                (m, Self::SIGN * (m - self.limit_gy))
            }
        }

        impl Objective for $ty {
            fn name(&self) -> &str {
                &self.name
            }

            fn rows(&self) -> &[u32] {
                &self.rows
            }

            fn value_and_gradient(&self, dose: &[f64], weight: f64, grad: &mut [f64]) -> f64 {
                let (m, e) = self.excess(dose);
                if e <= 0.0 {
                    return 0.0;
                }
                // d M / d d_i = exp(sign (d_i - M) / tau) (softmax weights).
                let s = 2.0 * e * weight * Self::SIGN;
                let tau = self.softness_gy;
                for &r in &self.rows {
                    grad[r as usize] += s * (Self::SIGN * (dose[r as usize] - m) / tau).exp();
                }
                e * e
            }

            fn value(&self, dose: &[f64]) -> f64 {
                squared_excess(self.excess(dose).1)
            }

            fn add_curvature(
                &self,
                dose: &[f64],
                weight: f64,
                curvature: &mut [f64],
            ) -> CurvatureKind {
                let (m, e) = self.excess(dose);
                if e > 0.0 {
                    let tau = self.softness_gy;
                    for &r in &self.rows {
                        let p = (Self::SIGN * (dose[r as usize] - m) / tau).exp();
                        curvature[r as usize] += 2.0 * weight * (p * p + e * p * (1.0 - p) / tau);
                    }
                }
                CurvatureKind::Approximate
            }

            fn validate(&self, n_rows: usize) -> Result<()> {
                crate::objective::check_rows(&self.name, &self.rows, n_rows)?;
                non_negative("dose limit (Gy)", self.limit_gy)?;
                positive("softness (Gy)", self.softness_gy).map(|_| ())
            }
        }
    };
}

extreme_dose!(MaxDose, 1.0, "max");
extreme_dose!(MinDose, -1.0, "min");

/// A mean-dose penalty: `f = max(0, mean - D)^2` ([`Sense::AtMost`]) or
/// `f = max(0, D - mean)^2` ([`Sense::AtLeast`]), Gy^2, with
/// `mean = (1/N) sum_i d_i`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanDose {
    name: String,
    rows: Vec<u32>,
    limit_gy: f64,
    sense: Sense,
}

impl MeanDose {
    /// The penalty over `structure`.
    ///
    /// # Errors
    /// Empty structure, grid mismatch, a negative or non-finite limit.
    pub fn new(
        influence: &DoseInfluence,
        structure: &Structure,
        sense: Sense,
        limit_gy: f64,
    ) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        Self::from_rows(
            format!("{} mean {} {limit_gy} Gy", structure.name(), sense.symbol()),
            rows,
            sense,
            limit_gy,
        )
    }

    /// From explicit rows.
    ///
    /// # Errors
    /// A negative or non-finite limit.
    pub fn from_rows(
        name: impl Into<String>,
        rows: Vec<u32>,
        sense: Sense,
        limit_gy: f64,
    ) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            rows,
            limit_gy: non_negative("mean-dose limit (Gy)", limit_gy)?,
            sense,
        })
    }

    /// The same objective under another name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Mean dose of its rows (Gy).
    pub fn mean_gy(&self, dose_rows: &[f64]) -> f64 {
        self.rows
            .iter()
            .map(|&r| dose_rows[r as usize])
            .sum::<f64>()
            / self.rows.len() as f64
    }

    fn excess(&self, dose: &[f64]) -> f64 {
        self.sense.excess(self.mean_gy(dose), self.limit_gy)
    }
}

impl Objective for MeanDose {
    fn name(&self) -> &str {
        &self.name
    }

    fn rows(&self) -> &[u32] {
        &self.rows
    }

    fn value_and_gradient(&self, dose: &[f64], weight: f64, grad: &mut [f64]) -> f64 {
        let e = self.excess(dose);
        if e <= 0.0 {
            return 0.0;
        }
        let s = self.sense.sign() * 2.0 * e * weight / self.rows.len() as f64;
        for &r in &self.rows {
            grad[r as usize] += s;
        }
        e * e
    }

    fn value(&self, dose: &[f64]) -> f64 {
        squared_excess(self.excess(dose))
    }

    fn add_curvature(&self, dose: &[f64], weight: f64, curvature: &mut [f64]) -> CurvatureKind {
        if self.excess(dose) > 0.0 {
            let n = self.rows.len() as f64;
            for &r in &self.rows {
                curvature[r as usize] += 2.0 * weight / (n * n);
            }
        }
        CurvatureKind::Approximate
    }

    fn validate(&self, n_rows: usize) -> Result<()> {
        crate::objective::check_rows(&self.name, &self.rows, n_rows)?;
        non_negative("mean-dose limit (Gy)", self.limit_gy).map(|_| ())
    }
}

/// A dose-volume (DVH) objective in the usual penalty form (Wu & Mohan,
/// Med Phys 27:701, 2000):
///
/// * [`Sense::AtMost`], "`V(D) <= v`" (e.g. V20 < 30 %): let `D_v` be the
///   dose of the hottest voxel beyond the fraction `v` allowed above `D`; the
///   voxels with `D < d_i <= D_v` are penalized, `f = (1/N) sum (d_i - D)^2`.
/// * [`Sense::AtLeast`], "`V(D) >= v`" (e.g. V50 >= 95 %, i.e. D95 >= 50 Gy):
///   the voxels with `D_v <= d_i < D`, where `D_v` is the dose of the coldest
///   voxel beyond the fraction `1 - v` allowed below `D`, are penalized,
///   `f = (1/N) sum (D - d_i)^2`.
///
/// `f = 0` exactly when the DVH constraint holds. The penalty is continuous
/// and piecewise quadratic in the doses; its gradient changes where voxels
/// swap places in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseVolume {
    name: String,
    rows: Vec<u32>,
    dose_gy: f64,
    volume_fraction: f64,
    sense: Sense,
    #[serde(skip)]
    scratch: Scratch,
}

impl DoseVolume {
    /// `V(dose_gy) <= volume_fraction` ([`Sense::AtMost`]) or `>=`
    /// ([`Sense::AtLeast`]) over `structure`; `volume_fraction` in `[0, 1]`.
    ///
    /// # Errors
    /// Empty structure, grid mismatch, a negative dose or a fraction outside
    /// `[0, 1]`.
    pub fn new(
        influence: &DoseInfluence,
        structure: &Structure,
        sense: Sense,
        dose_gy: f64,
        volume_fraction: f64,
    ) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        Self::from_rows(
            format!(
                "{} V{dose_gy}Gy {} {}%",
                structure.name(),
                sense.symbol(),
                volume_fraction * 100.0
            ),
            rows,
            sense,
            dose_gy,
            volume_fraction,
        )
    }

    /// From explicit rows.
    ///
    /// # Errors
    /// A negative dose or a fraction outside `[0, 1]`.
    pub fn from_rows(
        name: impl Into<String>,
        rows: Vec<u32>,
        sense: Sense,
        dose_gy: f64,
        volume_fraction: f64,
    ) -> Result<Self> {
        non_negative("DVH dose (Gy)", dose_gy)?;
        if !(0.0..=1.0).contains(&volume_fraction) {
            return Err(Error::invalid(
                "DVH volume fraction",
                format!("{volume_fraction} must lie in [0, 1]"),
            ));
        }
        Ok(Self {
            name: name.into(),
            rows,
            dose_gy,
            volume_fraction,
            sense,
            scratch: Scratch::default(),
        })
    }

    /// The same objective under another name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The band `[lo, hi]` of doses that are penalized.
    fn band(&self, dose: &[f64]) -> Option<(f64, f64)> {
        let n = self.rows.len();
        let mut buf = self.scratch.get(n);
        for (b, &r) in buf.iter_mut().zip(&self.rows) {
            *b = dose[r as usize];
        }
        match self.sense {
            Sense::AtMost => {
                // Voxels allowed above D: floor(v N); the next hottest bounds the band.
                let allowed = (self.volume_fraction * n as f64 + 1e-9).floor() as usize;
                if allowed >= n {
                    return None;
                }
                let k = n - 1 - allowed; // ascending index of the hottest non-allowed
                let (_, dv, _) = buf.select_nth_unstable_by(k, f64::total_cmp);
                (*dv > self.dose_gy).then_some((self.dose_gy, *dv))
            }
            Sense::AtLeast => {
                let allowed = ((1.0 - self.volume_fraction) * n as f64 + 1e-9).floor() as usize;
                if allowed >= n {
                    return None;
                }
                let (_, dv, _) = buf.select_nth_unstable_by(allowed, f64::total_cmp);
                (*dv < self.dose_gy).then_some((*dv, self.dose_gy))
            }
        }
    }

    /// Whether a dose in the band `[lo, hi]` of [`DoseVolume::band`] is
    /// penalized (the end at the limit `D` is not).
    fn in_band(&self, d: f64, (lo, hi): (f64, f64)) -> bool {
        match self.sense {
            Sense::AtMost => d > lo && d <= hi,
            Sense::AtLeast => d >= lo && d < hi,
        }
    }

    /// The value `f`, then `w * grad f` added into `grad` with the weight
    /// `w = weight_of(f)` (nothing when `w <= 0`), ranking the doses once for
    /// both: for penalty terms whose weight depends on the value, such as
    /// the augmented-Lagrangian term of a DVH constraint.
    pub(crate) fn value_then_gradient(
        &self,
        dose: &[f64],
        grad: &mut [f64],
        weight_of: impl FnOnce(f64) -> f64,
    ) -> f64 {
        let Some(band) = self.band(dose) else {
            weight_of(0.0);
            return 0.0;
        };
        let inv_n = 1.0 / self.rows.len() as f64;
        let penalized = || {
            self.rows
                .iter()
                .map(|&r| (r as usize, dose[r as usize]))
                .filter(move |&(_, d)| self.in_band(d, band))
        };
        let mut sum = 0.0;
        for (_, d) in penalized() {
            let e = d - self.dose_gy;
            sum += e * e;
        }
        let value = sum * inv_n;
        let w = weight_of(value);
        if w > 0.0 {
            for (r, d) in penalized() {
                grad[r] += 2.0 * w * inv_n * (d - self.dose_gy);
            }
        }
        value
    }

    fn kernel(&self, dose: &[f64], mut grad: Option<(&mut [f64], f64)>) -> f64 {
        let Some(band) = self.band(dose) else {
            return 0.0;
        };
        let inv_n = 1.0 / self.rows.len() as f64;
        let mut sum = 0.0;
        for &r in &self.rows {
            let d = dose[r as usize];
            if !self.in_band(d, band) {
                continue;
            }
            let e = d - self.dose_gy;
            sum += e * e;
            if let Some((g, w)) = grad.as_mut() {
                g[r as usize] += 2.0 * *w * inv_n * e;
            }
        }
        sum * inv_n
    }
}

impl Objective for DoseVolume {
    fn name(&self) -> &str {
        &self.name
    }

    fn rows(&self) -> &[u32] {
        &self.rows
    }

    fn value_and_gradient(&self, dose_rows: &[f64], weight: f64, grad_rows: &mut [f64]) -> f64 {
        self.kernel(dose_rows, Some((grad_rows, weight)))
    }

    fn value(&self, dose_rows: &[f64]) -> f64 {
        self.kernel(dose_rows, None)
    }

    fn add_curvature(&self, dose: &[f64], weight: f64, curvature: &mut [f64]) -> CurvatureKind {
        if let Some(band) = self.band(dose) {
            let s = 2.0 * weight / self.rows.len() as f64;
            for &r in &self.rows {
                if self.in_band(dose[r as usize], band) {
                    curvature[r as usize] += s;
                }
            }
        }
        CurvatureKind::Approximate
    }

    fn validate(&self, n_rows: usize) -> Result<()> {
        crate::objective::check_rows(&self.name, &self.rows, n_rows)?;
        Self::from_rows(
            self.name.clone(),
            Vec::new(),
            self.sense,
            self.dose_gy,
            self.volume_fraction,
        )
        .map(|_| ())
    }
}
