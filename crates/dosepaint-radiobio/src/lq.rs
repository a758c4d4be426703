//! The linear-quadratic (LQ) model: cell survival, BED, EQD2 and iso-effective
//! schedules, for single values and for whole dose distributions.
//!
//! Dose bookkeeping follows the workspace convention: a dose is the **total course
//! dose** `D` in Gy, the number of fractions `n` travels alongside, and the dose per
//! fraction `d = D / n` is derived where the LQ model needs it.
//!
//! * Survival after `n` fractions of `d`: `S = exp(-n (alpha d + beta d^2))
//!   = exp(-(alpha D + beta D^2 / n))` (Douglas & Fowler 1976; Fowler 1989,
//!   Br J Radiol 62:679).
//! * Biologically effective dose: `BED = D (1 + d / (alpha/beta))` (Barendsen 1982;
//!   Fowler 1989).
//! * Equivalent dose in `x` Gy fractions: `EQDx = BED / (1 + x / (alpha/beta))`;
//!   EQD2 is `x = 2` (Withers, Thames & Peters 1983).
//! * Iso-effective total dose in `m` fractions: the positive root of
//!   `D (1 + D / (m alpha/beta)) = BED`.

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::voxel::{VoxelValues, bad_dose, check_len, dose_ok, map_doses};

/// An alpha/beta ratio in Gy: finite and strictly positive.
///
/// ```
/// use dosepaint_radiobio::AlphaBeta;
/// let ab = AlphaBeta::new(3.0)?;
/// assert_eq!(ab.gy(), 3.0);
/// assert!(AlphaBeta::new(0.0).is_err());
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct AlphaBeta(f64);

impl AlphaBeta {
    /// Validate an alpha/beta ratio (Gy).
    pub fn new(alpha_beta_gy: f64) -> Result<Self> {
        error::positive("alpha_beta_gy", alpha_beta_gy).map(AlphaBeta)
    }

    /// The ratio in Gy.
    pub fn gy(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for AlphaBeta {
    type Error = Error;
    fn try_from(v: f64) -> Result<Self> {
        AlphaBeta::new(v)
    }
}

impl From<AlphaBeta> for f64 {
    fn from(ab: AlphaBeta) -> f64 {
        ab.0
    }
}

/// LQ radiosensitivity: `alpha` (Gy^-1) and `beta` (Gy^-2).
///
/// `alpha > 0` and `beta >= 0` (`beta = 0` is the pure-alpha model; its alpha/beta
/// ratio is infinite).
///
/// ```
/// use dosepaint_radiobio::LqParams;
/// let lq = LqParams::new(0.3, 0.03)?;
/// assert!((lq.alpha_beta_gy() - 10.0).abs() < 1e-12);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LqParamsSpec")]
pub struct LqParams {
    alpha_per_gy: f64,
    beta_per_gy2: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LqParamsSpec {
    alpha_per_gy: f64,
    beta_per_gy2: f64,
}

impl TryFrom<LqParamsSpec> for LqParams {
    type Error = Error;
    fn try_from(s: LqParamsSpec) -> Result<Self> {
        LqParams::new(s.alpha_per_gy, s.beta_per_gy2)
    }
}

impl LqParams {
    /// Validate `alpha` (Gy^-1, finite, > 0) and `beta` (Gy^-2, finite, >= 0).
    pub fn new(alpha_per_gy: f64, beta_per_gy2: f64) -> Result<Self> {
        error::positive("alpha_per_gy", alpha_per_gy)?;
        error::non_negative("beta_per_gy2", beta_per_gy2)?;
        Ok(LqParams {
            alpha_per_gy,
            beta_per_gy2,
        })
    }

    /// Build without validation, for values already known to be valid.
    pub(crate) fn from_parts(alpha_per_gy: f64, beta_per_gy2: f64) -> Self {
        debug_assert!(alpha_per_gy > 0.0 && beta_per_gy2 >= 0.0);
        LqParams {
            alpha_per_gy,
            beta_per_gy2,
        }
    }

    /// From `alpha` and the alpha/beta ratio: `beta = alpha / (alpha/beta)`.
    pub fn from_alpha_and_ratio(alpha_per_gy: f64, alpha_beta: AlphaBeta) -> Result<Self> {
        error::positive("alpha_per_gy", alpha_per_gy)?;
        LqParams::new(alpha_per_gy, alpha_per_gy / alpha_beta.gy())
    }

    /// `alpha` in Gy^-1.
    pub fn alpha_per_gy(&self) -> f64 {
        self.alpha_per_gy
    }

    /// `beta` in Gy^-2.
    pub fn beta_per_gy2(&self) -> f64 {
        self.beta_per_gy2
    }

    /// alpha/beta in Gy (`f64::INFINITY` when `beta = 0`).
    pub fn alpha_beta_gy(&self) -> f64 {
        if self.beta_per_gy2 > 0.0 {
            self.alpha_per_gy / self.beta_per_gy2
        } else {
            f64::INFINITY
        }
    }

    /// The alpha/beta ratio as a validated [`AlphaBeta`]; `None` when `beta = 0`.
    pub fn alpha_beta(&self) -> Option<AlphaBeta> {
        AlphaBeta::new(self.alpha_beta_gy()).ok()
    }

    /// Log cell kill `E = -ln S = alpha D + beta D^2 / n` for a total dose `D` in `n`
    /// fractions (no validation: see [`ln_survival`] for the checked version).
    #[inline]
    pub fn effect(&self, total_dose_gy: f64, fractions: u32) -> f64 {
        let d = total_dose_gy;
        self.alpha_per_gy * d + self.beta_per_gy2 * d * d / f64::from(fractions)
    }
}

/// A fractionation schedule: total course dose, number of fractions and (optionally)
/// the overall treatment time in days (from the first to the last fraction).
///
/// ```
/// use dosepaint_radiobio::{AlphaBeta, Fractionation};
/// let fx = Fractionation::new(60.0, 20)?;
/// assert_eq!(fx.dose_per_fraction_gy(), 3.0);
/// assert!((fx.eqd2(AlphaBeta::new(3.0)?) - 72.0).abs() < 1e-12);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FractionationSpec")]
pub struct Fractionation {
    total_dose_gy: f64,
    fractions: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overall_time_days: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FractionationSpec {
    total_dose_gy: f64,
    fractions: u32,
    #[serde(default)]
    overall_time_days: Option<f64>,
}

impl TryFrom<FractionationSpec> for Fractionation {
    type Error = Error;
    fn try_from(s: FractionationSpec) -> Result<Self> {
        let f = Fractionation::new(s.total_dose_gy, s.fractions)?;
        match s.overall_time_days {
            Some(t) => f.with_overall_time_days(t),
            None => Ok(f),
        }
    }
}

impl Fractionation {
    /// Validate a schedule: total dose finite and >= 0 Gy, at least one fraction.
    pub fn new(total_dose_gy: f64, fractions: u32) -> Result<Self> {
        error::dose("total_dose_gy", total_dose_gy)?;
        error::fraction_count("fractions", fractions)?;
        Ok(Fractionation {
            total_dose_gy,
            fractions,
            overall_time_days: None,
        })
    }

    /// From a dose per fraction and a number of fractions.
    pub fn from_dose_per_fraction(dose_per_fraction_gy: f64, fractions: u32) -> Result<Self> {
        error::dose("dose_per_fraction_gy", dose_per_fraction_gy)?;
        Fractionation::new(dose_per_fraction_gy * f64::from(fractions), fractions)
    }

    /// Attach the overall treatment time (days from the first to the last fraction,
    /// finite and >= 0).
    pub fn with_overall_time_days(mut self, days: f64) -> Result<Self> {
        error::non_negative("overall_time_days", days)?;
        self.overall_time_days = Some(days);
        Ok(self)
    }

    /// Attach the overall time of `fractions` given Monday to Friday, one a day,
    /// starting on a Monday (see [`weekday_overall_time_days`]).
    #[must_use]
    pub fn with_weekday_overall_time(mut self) -> Self {
        self.overall_time_days = Some(weekday_overall_time_days(self.fractions));
        self
    }

    /// Total course dose in Gy.
    pub fn total_dose_gy(&self) -> f64 {
        self.total_dose_gy
    }

    /// Number of fractions.
    pub fn fractions(&self) -> u32 {
        self.fractions
    }

    /// Overall treatment time in days, if known.
    pub fn overall_time_days(&self) -> Option<f64> {
        self.overall_time_days
    }

    /// Dose per fraction `d = D / n` in Gy.
    pub fn dose_per_fraction_gy(&self) -> f64 {
        self.total_dose_gy / f64::from(self.fractions)
    }

    /// `BED = D (1 + d / (alpha/beta))` in Gy.
    pub fn bed(&self, alpha_beta: AlphaBeta) -> f64 {
        bed_unchecked(self.total_dose_gy, self.fractions, alpha_beta.gy())
    }

    /// `EQD2 = BED / (1 + 2 / (alpha/beta))` in Gy.
    pub fn eqd2(&self, alpha_beta: AlphaBeta) -> f64 {
        self.eqdx(alpha_beta, 2.0)
    }

    /// Equivalent total dose in fractions of `x` Gy: `BED / (1 + x / (alpha/beta))`.
    /// `x` is not validated here (use [`eqdx`] for the checked form).
    pub fn eqdx(&self, alpha_beta: AlphaBeta, reference_dose_per_fraction_gy: f64) -> f64 {
        self.bed(alpha_beta) / (1.0 + reference_dose_per_fraction_gy / alpha_beta.gy())
    }

    /// Surviving fraction `exp(-n (alpha d + beta d^2))`.
    pub fn survival_fraction(&self, lq: &LqParams) -> f64 {
        (-lq.effect(self.total_dose_gy, self.fractions)).exp()
    }

    /// Natural log of the surviving fraction (never underflows).
    pub fn ln_survival(&self, lq: &LqParams) -> f64 {
        -lq.effect(self.total_dose_gy, self.fractions)
    }

    /// The schedule of `m` fractions with the same BED (same alpha/beta). The overall
    /// time is not carried over (it is a different schedule).
    pub fn isoeffective_in(&self, alpha_beta: AlphaBeta, m: u32) -> Result<Fractionation> {
        let d = isoeffective_total_dose(self.bed(alpha_beta), m, alpha_beta)?;
        Fractionation::new(d, m)
    }
}

/// Days from the first to the last of `fractions` daily fractions given Monday to
/// Friday, starting on a Monday (fraction `k`, 0-based, falls on day
/// `7 (k / 5) + k mod 5`). 35 fractions: 46 days; 30: 39 days; 1: 0 days.
pub fn weekday_overall_time_days(fractions: u32) -> f64 {
    if fractions == 0 {
        return 0.0;
    }
    let k = fractions - 1;
    f64::from(7 * (k / 5) + k % 5)
}

#[inline]
pub(crate) fn bed_unchecked(total: f64, fractions: u32, ab: f64) -> f64 {
    total * (1.0 + total / (f64::from(fractions) * ab))
}

/// `BED = D (1 + d / (alpha/beta))`, `d = D / n` (Gy). Checked.
///
/// ```
/// // 70 Gy in 35 fractions, alpha/beta 10 Gy: BED 84 Gy.
/// let bed = dosepaint_radiobio::bed(70.0, 35, 10.0)?;
/// assert!((bed - 84.0).abs() < 1e-9);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
pub fn bed(total_dose_gy: f64, fractions: u32, alpha_beta_gy: f64) -> Result<f64> {
    let ab = AlphaBeta::new(alpha_beta_gy)?;
    Ok(Fractionation::new(total_dose_gy, fractions)?.bed(ab))
}

/// `EQD2 = BED / (1 + 2 / (alpha/beta))` (Gy). Checked.
///
/// ```
/// // 60 Gy in 20 fractions, alpha/beta 3 Gy: EQD2 72 Gy.
/// let eqd2 = dosepaint_radiobio::eqd2(60.0, 20, 3.0)?;
/// assert!((eqd2 - 72.0).abs() < 1e-9);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
pub fn eqd2(total_dose_gy: f64, fractions: u32, alpha_beta_gy: f64) -> Result<f64> {
    eqdx(total_dose_gy, fractions, alpha_beta_gy, 2.0)
}

/// Equivalent dose in `x` Gy fractions: `EQDx = BED / (1 + x / (alpha/beta))`. Checked
/// (`x` finite and > 0).
pub fn eqdx(
    total_dose_gy: f64,
    fractions: u32,
    alpha_beta_gy: f64,
    reference_dose_per_fraction_gy: f64,
) -> Result<f64> {
    let ab = AlphaBeta::new(alpha_beta_gy)?;
    error::positive(
        "reference_dose_per_fraction_gy",
        reference_dose_per_fraction_gy,
    )?;
    Ok(Fractionation::new(total_dose_gy, fractions)?.eqdx(ab, reference_dose_per_fraction_gy))
}

/// The total dose `D` in `m` fractions whose BED equals `bed_gy`: the positive root
/// of `D (1 + D / (m alpha/beta)) = BED`, computed as
/// `D = 2 BED / (1 + sqrt(1 + 4 BED / (m alpha/beta)))` (no cancellation).
///
/// ```
/// use dosepaint_radiobio::{isoeffective_total_dose, AlphaBeta};
/// // BED 84 Gy (alpha/beta 10) in 35 fractions is 70 Gy.
/// let d = isoeffective_total_dose(84.0, 35, AlphaBeta::new(10.0)?)?;
/// assert!((d - 70.0).abs() < 1e-9);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
pub fn isoeffective_total_dose(bed_gy: f64, m: u32, alpha_beta: AlphaBeta) -> Result<f64> {
    error::non_negative("bed_gy", bed_gy)?;
    error::fraction_count("fractions", m)?;
    let c = f64::from(m) * alpha_beta.gy();
    Ok(2.0 * bed_gy / (1.0 + (1.0 + 4.0 * bed_gy / c).sqrt()))
}

/// LQ surviving fraction after `n` fractions delivering a total of `D` Gy:
/// `exp(-(alpha D + beta D^2 / n))`. Checked.
pub fn survival_fraction(lq: &LqParams, total_dose_gy: f64, fractions: u32) -> Result<f64> {
    Ok(ln_survival(lq, total_dose_gy, fractions)?.exp())
}

/// Natural log of the LQ surviving fraction, `-(alpha D + beta D^2 / n)`. Checked.
pub fn ln_survival(lq: &LqParams, total_dose_gy: f64, fractions: u32) -> Result<f64> {
    error::dose("total_dose_gy", total_dose_gy)?;
    error::fraction_count("fractions", fractions)?;
    Ok(-lq.effect(total_dose_gy, fractions))
}

/// The total dose in `n` fractions that gives a log cell kill `E = -ln S`: the
/// positive root of `alpha D + beta D^2 / n = E`, computed without cancellation as
/// `D = 2 E / (alpha + sqrt(alpha^2 + 4 beta E / n))`.
///
/// This is the iso-effect building block of dose painting by numbers: a voxel with
/// more clonogens or lower radiosensitivity needs the dose that reaches the same
/// expected number of survivors.
pub fn dose_for_log_cell_kill(lq: &LqParams, log_cell_kill: f64, fractions: u32) -> Result<f64> {
    error::non_negative("log_cell_kill", log_cell_kill)?;
    error::fraction_count("fractions", fractions)?;
    let a = lq.alpha_per_gy;
    let b = lq.beta_per_gy2 / f64::from(fractions);
    Ok(2.0 * log_cell_kill / (a + (a * a + 4.0 * b * log_cell_kill).sqrt()))
}

fn check_ab_values(alpha_beta_gy: VoxelValues<'_>, n: usize) -> Result<()> {
    alpha_beta_gy.validate("alpha_beta_gy", n, "finite and > 0 Gy", |v| {
        v.is_finite() && v > 0.0
    })
}

/// BED of every voxel of a dose distribution (total course doses in Gy, `fractions`
/// fractions), with a uniform or per-voxel alpha/beta, written into `out`.
///
/// ```
/// use dosepaint_radiobio::bed_map;
/// let doses = [70.0, 0.0, 35.0];
/// let mut out = [0.0; 3];
/// bed_map(&doses, 35, 10.0.into(), &mut out)?;
/// assert!((out[0] - 84.0).abs() < 1e-9);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
pub fn bed_map(
    doses_gy: &[f64],
    fractions: u32,
    alpha_beta_gy: VoxelValues<'_>,
    out: &mut [f64],
) -> Result<()> {
    convert_map(doses_gy, fractions, alpha_beta_gy, 0.0, out, None)
}

/// EQD2 of every voxel (see [`bed_map`]).
pub fn eqd2_map(
    doses_gy: &[f64],
    fractions: u32,
    alpha_beta_gy: VoxelValues<'_>,
    out: &mut [f64],
) -> Result<()> {
    convert_map(doses_gy, fractions, alpha_beta_gy, 2.0, out, None)
}

/// EQD2 of every voxel and its derivative with respect to the voxel's total dose,
/// `dEQD2/dD = (1 + 2 D / (n alpha/beta)) / (1 + 2 / (alpha/beta))`: multiply a
/// gradient with respect to EQD2 by it to get the gradient with respect to physical
/// dose (chain rule), e.g. for an NTCP model whose parameters are given in EQD2.
pub fn eqd2_map_with_derivative(
    doses_gy: &[f64],
    fractions: u32,
    alpha_beta_gy: VoxelValues<'_>,
    out: &mut [f64],
    derivative_out: &mut [f64],
) -> Result<()> {
    convert_map(
        doses_gy,
        fractions,
        alpha_beta_gy,
        2.0,
        out,
        Some(derivative_out),
    )
}

/// LQ surviving fraction of every voxel (uniform or per-voxel alpha and beta).
pub fn survival_map(
    doses_gy: &[f64],
    fractions: u32,
    alpha_per_gy: VoxelValues<'_>,
    beta_per_gy2: VoxelValues<'_>,
    out: &mut [f64],
) -> Result<()> {
    error::fraction_count("fractions", fractions)?;
    let n = doses_gy.len();
    alpha_per_gy.validate("alpha_per_gy", n, "finite and > 0", |v| {
        v.is_finite() && v > 0.0
    })?;
    beta_per_gy2.validate("beta_per_gy2", n, "finite and >= 0", |v| {
        v.is_finite() && v >= 0.0
    })?;
    let nf = f64::from(fractions);
    map_doses(doses_gy, out, |i, d| {
        (-(alpha_per_gy.at(i) * d + beta_per_gy2.at(i) * d * d / nf)).exp()
    })
}

/// Allocating convenience: EQD2 of every voxel.
pub fn to_eqd2(
    doses_gy: &[f64],
    fractions: u32,
    alpha_beta_gy: VoxelValues<'_>,
) -> Result<Vec<f64>> {
    let mut out = vec![0.0; doses_gy.len()];
    eqd2_map(doses_gy, fractions, alpha_beta_gy, &mut out)?;
    Ok(out)
}

/// Allocating convenience: BED of every voxel.
pub fn to_bed(
    doses_gy: &[f64],
    fractions: u32,
    alpha_beta_gy: VoxelValues<'_>,
) -> Result<Vec<f64>> {
    let mut out = vec![0.0; doses_gy.len()];
    bed_map(doses_gy, fractions, alpha_beta_gy, &mut out)?;
    Ok(out)
}

/// `reference == 0` means BED; otherwise EQDx with that reference dose per fraction.
fn convert_map(
    doses_gy: &[f64],
    fractions: u32,
    alpha_beta_gy: VoxelValues<'_>,
    reference: f64,
    out: &mut [f64],
    mut derivative_out: Option<&mut [f64]>,
) -> Result<()> {
    error::fraction_count("fractions", fractions)?;
    let n = doses_gy.len();
    check_len("out", n, out.len())?;
    if let Some(dout) = derivative_out.as_deref() {
        check_len("derivative_out", n, dout.len())?;
    }
    check_ab_values(alpha_beta_gy, n)?;
    let nf = f64::from(fractions);
    for (i, &d) in doses_gy.iter().enumerate() {
        if !dose_ok(d) {
            return Err(bad_dose(i, d));
        }
        let ab = alpha_beta_gy.at(i);
        let scale = 1.0 / (1.0 + reference / ab);
        out[i] = d * (1.0 + d / (nf * ab)) * scale;
        if let Some(dout) = derivative_out.as_deref_mut() {
            dout[i] = (1.0 + 2.0 * d / (nf * ab)) * scale;
        }
    }
    Ok(())
}
