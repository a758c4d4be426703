//! Treatment schedules made of phases, evaluated region by region in BED/EQD2 with
//! the overall treatment time and repopulation; a sequential boost against a
//! simultaneous integrated boost (SIB).
//!
//! A region (elective volume, boost volume...) receives a total dose from each
//! phase. Its BED is the sum of the phases' BEDs (each with its own dose per
//! fraction), less the repopulation loss over the region's overall time: the days
//! from the first fraction of the first phase that gives it dose to the last
//! fraction of the last phase that gives it dose.

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::lq::{AlphaBeta, bed_unchecked};
use crate::repopulation::{Repopulation, isoeffective_total_dose_with_time};

/// One phase of a schedule: a number of fractions delivered between two days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// A label ("base", "boost", "SIB"...).
    pub name: String,
    /// Number of fractions in the phase (>= 1).
    pub fractions: u32,
    /// Day of the first fraction, counted from the first fraction of the course (day 0).
    pub first_day: f64,
    /// Day of the last fraction.
    pub last_day: f64,
}

/// A validated sequence of phases.
///
/// ```
/// use dosepaint_radiobio::{AlphaBeta, Repopulation, Schedule};
/// // 50 Gy / 25 fractions, then a 20 Gy / 10 fraction boost, Monday to Friday.
/// let seq = Schedule::five_per_week(&[("base", 25), ("boost", 10)])?;
/// let ab = AlphaBeta::new(10.0)?;
/// let r = Repopulation::tpot(21.0, 0.35, 3.0)?;
/// let boost = seq.evaluate("boost volume", &[50.0, 20.0], ab, &r)?;
/// assert_eq!(boost.overall_time_days, 46.0);
/// assert!((boost.bed_gy - 84.0).abs() < 1e-9);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSpec")]
pub struct Schedule {
    phases: Vec<Phase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSpec {
    phases: Vec<Phase>,
}

impl TryFrom<ScheduleSpec> for Schedule {
    type Error = Error;
    fn try_from(s: ScheduleSpec) -> Result<Self> {
        Schedule::new(s.phases)
    }
}

/// The BED/EQD2 bookkeeping of one region under one schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionEffect {
    /// Region label.
    pub region: String,
    /// Total physical dose over all phases (Gy).
    pub physical_dose_gy: f64,
    /// Number of fractions that give the region dose.
    pub fractions: u32,
    /// Days from the region's first to its last fraction.
    pub overall_time_days: f64,
    /// BED without the time factor (Gy).
    pub bed_gy: f64,
    /// BED lost to repopulation over the overall time (Gy).
    pub repopulation_loss_gy: f64,
    /// `bed_gy - repopulation_loss_gy` (Gy); may be negative, not clamped.
    pub effective_bed_gy: f64,
    /// `effective_bed_gy / (1 + 2 / (alpha/beta))` (Gy).
    pub eqd2_gy: f64,
}

impl Schedule {
    /// Validate phases: at least one; each with >= 1 fraction, finite days,
    /// `0 <= first_day <= last_day`; phases in time order without overlap
    /// (`first_day` of a phase after `last_day` of the previous one).
    pub fn new(phases: Vec<Phase>) -> Result<Self> {
        if phases.is_empty() {
            return Err(Error::Empty { name: "phases" });
        }
        let mut previous_last = f64::NEG_INFINITY;
        for p in &phases {
            error::fraction_count("fractions", p.fractions)?;
            error::non_negative("first_day", p.first_day)?;
            error::non_negative("last_day", p.last_day)?;
            if p.last_day < p.first_day {
                return Err(Error::InvalidSchedule(format!(
                    "phase `{}` ends (day {}) before it starts (day {})",
                    p.name, p.last_day, p.first_day
                )));
            }
            if p.first_day <= previous_last {
                return Err(Error::InvalidSchedule(format!(
                    "phase `{}` starts on day {}, not after the previous phase ends (day {})",
                    p.name, p.first_day, previous_last
                )));
            }
            previous_last = p.last_day;
        }
        Ok(Schedule { phases })
    }

    /// Consecutive phases of daily fractions, Monday to Friday, starting on a Monday,
    /// each phase starting on the treatment day after the previous one ends.
    pub fn five_per_week(phases: &[(&str, u32)]) -> Result<Self> {
        let mut k = 0u32;
        let mut out = Vec::with_capacity(phases.len());
        for &(name, fractions) in phases {
            error::fraction_count("fractions", fractions)?;
            let day = |k: u32| f64::from(7 * (k / 5) + k % 5);
            out.push(Phase {
                name: name.to_string(),
                fractions,
                first_day: day(k),
                last_day: day(k + fractions - 1),
            });
            k += fractions;
        }
        Schedule::new(out)
    }

    /// The phases.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Total number of fractions.
    pub fn fractions(&self) -> u32 {
        self.phases.iter().map(|p| p.fractions).sum()
    }

    /// Evaluate a region that receives `phase_doses_gy[k]` (total, Gy) from phase `k`.
    pub fn evaluate(
        &self,
        region: &str,
        phase_doses_gy: &[f64],
        alpha_beta: AlphaBeta,
        repopulation: &Repopulation,
    ) -> Result<RegionEffect> {
        crate::voxel::check_len("phase_doses_gy", self.phases.len(), phase_doses_gy.len())?;
        let mut bed = 0.0;
        let mut physical = 0.0;
        let mut fractions = 0;
        let mut first = f64::INFINITY;
        let mut last = f64::NEG_INFINITY;
        for (p, &d) in self.phases.iter().zip(phase_doses_gy) {
            error::dose("phase_doses_gy", d)?;
            if d > 0.0 {
                bed += bed_unchecked(d, p.fractions, alpha_beta.gy());
                physical += d;
                fractions += p.fractions;
                first = first.min(p.first_day);
                last = last.max(p.last_day);
            }
        }
        let overall = if fractions > 0 { last - first } else { 0.0 };
        let loss = if fractions > 0 {
            repopulation.bed_loss_gy(overall)
        } else {
            0.0
        };
        let effective = bed - loss;
        Ok(RegionEffect {
            region: region.to_string(),
            physical_dose_gy: physical,
            fractions,
            overall_time_days: overall,
            bed_gy: bed,
            repopulation_loss_gy: loss,
            effective_bed_gy: effective,
            eqd2_gy: effective / (1.0 + 2.0 / alpha_beta.gy()),
        })
    }
}

/// A sequential boost and the simultaneous integrated boost that delivers the same
/// total physical doses: the elective volume receives `elective_dose_gy` and the
/// boost volume `elective_dose_gy + boost_dose_gy`.
///
/// * Sequential: `base_fractions` to both volumes (`elective_dose_gy`), then
///   `boost_fractions` to the boost volume only (`boost_dose_gy`).
/// * SIB: `sib_fractions` to both volumes at once, with their different doses per
///   fraction. With `sib_fractions = base_fractions` the SIB is the shorter schedule.
///
/// Fractions are daily, Monday to Friday.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoostPlan {
    /// Total dose to the elective volume (Gy).
    pub elective_dose_gy: f64,
    /// Fractions of the sequential base phase.
    pub base_fractions: u32,
    /// Extra dose to the boost volume (Gy).
    pub boost_dose_gy: f64,
    /// Fractions of the sequential boost phase.
    pub boost_fractions: u32,
    /// Fractions of the SIB schedule.
    pub sib_fractions: u32,
}

/// The result of [`compare_sequential_and_sib`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostComparison {
    /// Elective and boost volume under the sequential schedule.
    pub sequential: [RegionEffect; 2],
    /// Elective and boost volume under the SIB schedule.
    pub sib: [RegionEffect; 2],
    /// SIB total doses (elective, boost; Gy) in `sib_fractions` that would match the
    /// sequential schedule's effective BED of each volume, given the SIB's shorter
    /// (or equal) overall time: what the SIB would have to give for the same effect.
    pub sib_isoeffective_doses_gy: [f64; 2],
}

/// Compare a sequential boost with the SIB that gives the same physical doses, in
/// BED/EQD2 with the overall time and repopulation.
///
/// ```
/// use dosepaint_radiobio::{compare_sequential_and_sib, AlphaBeta, BoostPlan, Repopulation};
/// let plan = BoostPlan { elective_dose_gy: 50.0, base_fractions: 25,
///                        boost_dose_gy: 20.0, boost_fractions: 10, sib_fractions: 30 };
/// let r = Repopulation::tpot(21.0, 0.35, 3.0)?;
/// let c = compare_sequential_and_sib(&plan, AlphaBeta::new(10.0)?, &r)?;
/// // The SIB finishes earlier, so less BED is lost to repopulation in the boost volume.
/// assert!(c.sib[1].overall_time_days < c.sequential[1].overall_time_days);
/// assert!(c.sib[1].repopulation_loss_gy < c.sequential[1].repopulation_loss_gy);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
pub fn compare_sequential_and_sib(
    plan: &BoostPlan,
    alpha_beta: AlphaBeta,
    repopulation: &Repopulation,
) -> Result<BoostComparison> {
    error::dose("elective_dose_gy", plan.elective_dose_gy)?;
    error::dose("boost_dose_gy", plan.boost_dose_gy)?;
    error::fraction_count("base_fractions", plan.base_fractions)?;
    error::fraction_count("boost_fractions", plan.boost_fractions)?;
    error::fraction_count("sib_fractions", plan.sib_fractions)?;
    let seq = Schedule::five_per_week(&[
        ("base", plan.base_fractions),
        ("boost", plan.boost_fractions),
    ])?;
    let sib = Schedule::five_per_week(&[("sib", plan.sib_fractions)])?;
    let e = plan.elective_dose_gy;
    let b = plan.elective_dose_gy + plan.boost_dose_gy;
    let sequential = [
        seq.evaluate("elective", &[e, 0.0], alpha_beta, repopulation)?,
        seq.evaluate("boost", &[e, plan.boost_dose_gy], alpha_beta, repopulation)?,
    ];
    let sib_effects = [
        sib.evaluate("elective", &[e], alpha_beta, repopulation)?,
        sib.evaluate("boost", &[b], alpha_beta, repopulation)?,
    ];
    let sib_time = sib.phases[0].last_day - sib.phases[0].first_day;
    let iso = |target: f64| -> Result<f64> {
        isoeffective_total_dose_with_time(
            target,
            plan.sib_fractions,
            sib_time,
            alpha_beta,
            repopulation,
        )
    };
    Ok(BoostComparison {
        sib_isoeffective_doses_gy: [
            iso(sequential[0].effective_bed_gy)?,
            iso(sequential[1].effective_bed_gy)?,
        ],
        sequential,
        sib: sib_effects,
    })
}
