//! Overall-time correction for accelerated repopulation of tumour clonogens.
//!
//! Effective `BED = n d (1 + d/(alpha/beta)) - loss(T)` with
//! `loss(T) = rate * max(0, T - T_k)`, `T` the overall treatment time (days from the
//! first to the last fraction) and `T_k` the kick-off time (Withers, Taylor &
//! Maciejewski 1988, Acta Oncol 27:131). The rate is either
//!
//! * a dose-equivalent per day `D_prolif` (BED in Gy per day), or
//! * `ln 2 / (alpha T_pot)` with the potential doubling time `T_pot` (Fowler 1989,
//!   Br J Radiol 62:679).

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::lq::AlphaBeta;

/// A repopulation (time-factor) model.
///
/// ```
/// use dosepaint_radiobio::Repopulation;
/// // Fowler 2008 head-and-neck tumour: T_k 21 d, alpha 0.35 /Gy, T_pot 3 d.
/// let r = Repopulation::tpot(21.0, 0.35, 3.0)?;
/// let loss = r.bed_loss_gy(46.0);
/// assert!((loss - 25.0 * std::f64::consts::LN_2 / (0.35 * 3.0)).abs() < 1e-12);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(try_from = "RepopulationSpec", tag = "form", rename_all = "snake_case")]
pub enum Repopulation {
    /// No time factor (late-responding normal tissue, or when it is ignored).
    #[default]
    None,
    /// `loss = D_prolif (T - T_k)` for `T > T_k`.
    DosePerDay {
        /// Kick-off time `T_k` in days.
        kickoff_days: f64,
        /// `D_prolif`: BED lost per day after kick-off (Gy/day).
        bed_per_day_gy: f64,
    },
    /// `loss = ln 2 (T - T_k) / (alpha T_pot)` for `T > T_k`.
    Tpot {
        /// Kick-off time `T_k` in days.
        kickoff_days: f64,
        /// `alpha` of the tumour (Gy^-1).
        alpha_per_gy: f64,
        /// Potential (effective clonogen) doubling time in days.
        tpot_days: f64,
    },
}

#[derive(Deserialize)]
#[serde(tag = "form", rename_all = "snake_case", deny_unknown_fields)]
enum RepopulationSpec {
    None,
    DosePerDay {
        kickoff_days: f64,
        bed_per_day_gy: f64,
    },
    Tpot {
        kickoff_days: f64,
        alpha_per_gy: f64,
        tpot_days: f64,
    },
}

impl TryFrom<RepopulationSpec> for Repopulation {
    type Error = Error;
    fn try_from(s: RepopulationSpec) -> Result<Self> {
        match s {
            RepopulationSpec::None => Ok(Repopulation::None),
            RepopulationSpec::DosePerDay {
                kickoff_days,
                bed_per_day_gy,
            } => Repopulation::dose_per_day(kickoff_days, bed_per_day_gy),
            RepopulationSpec::Tpot {
                kickoff_days,
                alpha_per_gy,
                tpot_days,
            } => Repopulation::tpot(kickoff_days, alpha_per_gy, tpot_days),
        }
    }
}

impl Repopulation {
    /// Kick-off time (days, >= 0) and BED lost per day after it (Gy/day, >= 0).
    pub fn dose_per_day(kickoff_days: f64, bed_per_day_gy: f64) -> Result<Self> {
        error::non_negative("kickoff_days", kickoff_days)?;
        error::non_negative("bed_per_day_gy", bed_per_day_gy)?;
        Ok(Repopulation::DosePerDay {
            kickoff_days,
            bed_per_day_gy,
        })
    }

    /// From a dose-equivalent per day quoted in EQD2 (dose in 2 Gy fractions, as in
    /// Withers et al. 1988): `D_prolif(BED) = D_prolif(EQD2) (1 + 2/(alpha/beta))`.
    pub fn from_eqd2_per_day(
        kickoff_days: f64,
        eqd2_per_day_gy: f64,
        alpha_beta: AlphaBeta,
    ) -> Result<Self> {
        error::non_negative("eqd2_per_day_gy", eqd2_per_day_gy)?;
        Repopulation::dose_per_day(
            kickoff_days,
            eqd2_per_day_gy * (1.0 + 2.0 / alpha_beta.gy()),
        )
    }

    /// Kick-off time (days, >= 0), tumour alpha (Gy^-1, > 0) and `T_pot` (days, > 0).
    pub fn tpot(kickoff_days: f64, alpha_per_gy: f64, tpot_days: f64) -> Result<Self> {
        error::non_negative("kickoff_days", kickoff_days)?;
        error::positive("alpha_per_gy", alpha_per_gy)?;
        error::positive("tpot_days", tpot_days)?;
        Ok(Repopulation::Tpot {
            kickoff_days,
            alpha_per_gy,
            tpot_days,
        })
    }

    /// BED lost per day after kick-off (Gy/day).
    pub fn bed_per_day_gy(&self) -> f64 {
        match *self {
            Repopulation::None => 0.0,
            Repopulation::DosePerDay { bed_per_day_gy, .. } => bed_per_day_gy,
            Repopulation::Tpot {
                alpha_per_gy,
                tpot_days,
                ..
            } => std::f64::consts::LN_2 / (alpha_per_gy * tpot_days),
        }
    }

    /// Kick-off time in days (0 for [`Repopulation::None`]).
    pub fn kickoff_days(&self) -> f64 {
        match *self {
            Repopulation::None => 0.0,
            Repopulation::DosePerDay { kickoff_days, .. }
            | Repopulation::Tpot { kickoff_days, .. } => kickoff_days,
        }
    }

    /// BED lost to repopulation for an overall time of `overall_time_days`:
    /// `rate * max(0, T - T_k)` (0 for a NaN or negative time).
    pub fn bed_loss_gy(&self, overall_time_days: f64) -> f64 {
        let excess = overall_time_days - self.kickoff_days();
        if excess > 0.0 {
            self.bed_per_day_gy() * excess
        } else {
            0.0
        }
    }

    /// Checked form of [`Repopulation::bed_loss_gy`] (time finite and >= 0).
    pub fn try_bed_loss_gy(&self, overall_time_days: f64) -> Result<f64> {
        error::non_negative("overall_time_days", overall_time_days)?;
        Ok(self.bed_loss_gy(overall_time_days))
    }
}

/// Effective BED of a schedule with its overall time: `BED - loss(T)`.
///
/// Fails if the schedule has no overall time (set it with
/// [`Fractionation::with_overall_time_days`](crate::Fractionation::with_overall_time_days)).
/// The result may be negative when repopulation outweighs the dose: that is
/// reported as is, not clamped.
pub fn effective_bed(
    schedule: &crate::Fractionation,
    alpha_beta: AlphaBeta,
    repopulation: &Repopulation,
) -> Result<f64> {
    let t = schedule
        .overall_time_days()
        .ok_or(Error::InvalidParameter {
            name: "overall_time_days",
            value: f64::NAN,
            requirement: "set on the schedule when a repopulation correction is applied",
        })?;
    Ok(schedule.bed(alpha_beta) - repopulation.bed_loss_gy(t))
}

/// The total dose in `m` fractions over `overall_time_days` whose effective BED
/// (after the repopulation loss of that time) equals `target_effective_bed_gy`.
pub fn isoeffective_total_dose_with_time(
    target_effective_bed_gy: f64,
    m: u32,
    overall_time_days: f64,
    alpha_beta: AlphaBeta,
    repopulation: &Repopulation,
) -> Result<f64> {
    error::finite("target_effective_bed_gy", target_effective_bed_gy)?;
    let needed = target_effective_bed_gy + repopulation.try_bed_loss_gy(overall_time_days)?;
    if needed < 0.0 {
        return Err(Error::InvalidParameter {
            name: "target_effective_bed_gy",
            value: target_effective_bed_gy,
            requirement: "at least minus the repopulation loss of the new schedule",
        });
    }
    crate::lq::isoeffective_total_dose(needed, m, alpha_beta)
}
