//! Genomic-adjusted radiation dose (GARD; Scott et al. 2017, Lancet Oncol 18:202).
//!
//! The radiosensitivity index (RSI, Eschrich et al. 2009, Int J Radiat Oncol Biol
//! Phys 75:489) is a gene-expression estimate of the surviving fraction at 2 Gy,
//! `SF2`. Scott et al. fix `beta = 0.05 Gy^-2` and solve the LQ model for the
//! patient's alpha:
//!
//! `RSI = exp(-(2 alpha + 4 beta))`, so `alpha = -ln(RSI)/2 - 2 beta`,
//!
//! and define `GARD = n d (alpha + beta d) = alpha D + beta D^2 / n` (the log cell
//! kill `-ln S` of the schedule with the patient's alpha). Higher GARD predicted
//! better outcome in their cohorts.
//!
//! Limits: RSI is a tumour-level (not voxel-level) number from one biopsy; the
//! fixed beta and the LQ extrapolation from SF2 are assumptions of the model, not
//! measurements; GARD was derived for conventionally fractionated photon therapy,
//! and thresholds that separate outcomes were fitted per disease site. RSI values
//! at or above `exp(-4 beta) = exp(-0.2) ~ 0.819` give `alpha <= 0` and are refused.

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::lq::{Fractionation, LqParams};
use crate::voxel::map_doses;

/// The beta fixed by Scott et al. 2017 (Gy^-2).
pub const GARD_BETA_PER_GY2: f64 = 0.05;

/// A patient's radiosensitivity derived from the RSI.
///
/// ```
/// use dosepaint_radiobio::{Fractionation, Gard};
/// let g = Gard::from_rsi(0.4)?;
/// // alpha = -ln(0.4)/2 - 0.1
/// assert!((g.alpha_per_gy() - (-(0.4f64).ln() / 2.0 - 0.1)).abs() < 1e-12);
/// let gard = g.gard(&Fractionation::new(60.0, 30)?);
/// assert!((gard - 60.0 * (g.alpha_per_gy() + 0.05 * 2.0)).abs() < 1e-9);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GardSpec")]
pub struct Gard {
    rsi: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GardSpec {
    rsi: f64,
}

impl TryFrom<GardSpec> for Gard {
    type Error = Error;
    fn try_from(s: GardSpec) -> Result<Self> {
        Gard::from_rsi(s.rsi)
    }
}

impl Gard {
    /// From the RSI: `0 < RSI < exp(-0.2)` (so that alpha > 0).
    pub fn from_rsi(rsi: f64) -> Result<Self> {
        let upper = (-4.0 * GARD_BETA_PER_GY2).exp();
        if rsi.is_finite() && rsi > 0.0 && rsi < upper {
            Ok(Gard { rsi })
        } else {
            Err(Error::InvalidParameter {
                name: "rsi",
                value: rsi,
                requirement: "in (0, exp(-0.2) ~ 0.8187) so that alpha > 0 with beta = 0.05",
            })
        }
    }

    /// The RSI.
    pub fn rsi(&self) -> f64 {
        self.rsi
    }

    /// `alpha = -ln(RSI)/2 - 2 beta` (Gy^-1).
    pub fn alpha_per_gy(&self) -> f64 {
        -self.rsi.ln() / 2.0 - 2.0 * GARD_BETA_PER_GY2
    }

    /// The patient's LQ parameters (alpha from RSI, beta = 0.05 Gy^-2).
    pub fn lq(&self) -> LqParams {
        // alpha > 0 is guaranteed by the RSI range checked at construction.
        LqParams::from_parts(self.alpha_per_gy(), GARD_BETA_PER_GY2)
    }

    /// `GARD = n d (alpha + beta d)` of a schedule.
    pub fn gard(&self, schedule: &Fractionation) -> f64 {
        self.lq()
            .effect(schedule.total_dose_gy(), schedule.fractions())
    }

    /// The total dose in `fractions` fractions that reaches `target_gard` (the
    /// positive root of `alpha D + beta D^2 / n = GARD`).
    pub fn total_dose_for(&self, target_gard: f64, fractions: u32) -> Result<f64> {
        crate::lq::dose_for_log_cell_kill(&self.lq(), target_gard, fractions)
    }

    /// GARD of every voxel of a dose distribution (total course doses in Gy).
    pub fn gard_map(&self, doses_gy: &[f64], fractions: u32, out: &mut [f64]) -> Result<()> {
        error::fraction_count("fractions", fractions)?;
        let lq = self.lq();
        map_doses(doses_gy, out, |_, d| lq.effect(d, fractions))
    }
}
