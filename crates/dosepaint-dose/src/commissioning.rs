//! Commissioning: fit a machine's parameters to measured water-phantom data
//! (percentage depth doses and lateral profiles) with argmin's Nelder-Mead.

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::neldermead::NelderMead;
use argmin_math::{ArgminAdd, ArgminMul, ArgminSub};
use serde::{Deserialize, Serialize};

use crate::{Error, Field, Machine, MachineParams, Result};

/// A measured central-axis percentage depth dose (percent of its maximum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredPdd {
    /// Field at the isocentre plane.
    pub field: Field,
    /// Source-surface distance (mm).
    pub ssd_mm: f64,
    /// `(depth mm, percent)` pairs.
    pub points: Vec<(f64, f64)>,
    /// Weight of this curve in the fit (1 by default).
    #[serde(default = "one")]
    pub weight: f64,
}

/// A measured lateral (crossline, BEV x) profile, in percent of the
/// central-axis dose at the same depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredProfile {
    /// Field at the isocentre plane.
    pub field: Field,
    /// Source-surface distance (mm).
    pub ssd_mm: f64,
    /// Depth of the profile (mm).
    pub depth_mm: f64,
    /// `(off-axis mm in the plane at that depth, percent)` pairs.
    pub points: Vec<(f64, f64)>,
    /// Weight of this curve in the fit (1 by default).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// Measured beam data for commissioning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommissioningData {
    /// Depth doses.
    pub pdds: Vec<MeasuredPdd>,
    /// Lateral profiles.
    pub profiles: Vec<MeasuredProfile>,
}

/// A machine parameter the fit may vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FitParameter {
    /// `primary.attenuation_per_mm`
    PrimaryAttenuation,
    /// `primary.buildup_per_mm`
    PrimaryBuildup,
    /// `primary.sigma_mm`
    PrimarySigma,
    /// `primary.sigma_per_mm_depth`
    PrimarySigmaGrowth,
    /// `scatter.amplitude`
    ScatterAmplitude,
    /// `scatter.buildup_per_mm`
    ScatterBuildup,
    /// `scatter.attenuation_per_mm`
    ScatterAttenuation,
    /// `scatter.sigma_mm`
    ScatterSigma,
    /// `scatter.sigma_per_mm_depth`
    ScatterSigmaGrowth,
    /// `electron.amplitude`
    ElectronAmplitude,
    /// `electron.decay_mm`
    ElectronDecay,
    /// `electron.sigma_mm`
    ElectronSigma,
    /// `source.sigma_mm`
    SourceSigma,
}

impl FitParameter {
    /// Every fit parameter.
    pub const ALL: [FitParameter; 13] = [
        Self::PrimaryAttenuation,
        Self::PrimaryBuildup,
        Self::PrimarySigma,
        Self::PrimarySigmaGrowth,
        Self::ScatterAmplitude,
        Self::ScatterBuildup,
        Self::ScatterAttenuation,
        Self::ScatterSigma,
        Self::ScatterSigmaGrowth,
        Self::ElectronAmplitude,
        Self::ElectronDecay,
        Self::ElectronSigma,
        Self::SourceSigma,
    ];

    fn slot(self, p: &mut MachineParams) -> &mut f64 {
        match self {
            Self::PrimaryAttenuation => &mut p.primary.attenuation_per_mm,
            Self::PrimaryBuildup => &mut p.primary.buildup_per_mm,
            Self::PrimarySigma => &mut p.primary.sigma_mm,
            Self::PrimarySigmaGrowth => &mut p.primary.sigma_per_mm_depth,
            Self::ScatterAmplitude => &mut p.scatter.amplitude,
            Self::ScatterBuildup => &mut p.scatter.buildup_per_mm,
            Self::ScatterAttenuation => &mut p.scatter.attenuation_per_mm,
            Self::ScatterSigma => &mut p.scatter.sigma_mm,
            Self::ScatterSigmaGrowth => &mut p.scatter.sigma_per_mm_depth,
            Self::ElectronAmplitude => &mut p.electron.amplitude,
            Self::ElectronDecay => &mut p.electron.decay_mm,
            Self::ElectronSigma => &mut p.electron.sigma_mm,
            Self::SourceSigma => &mut p.source.sigma_mm,
        }
    }
}

/// Options of [`commission`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// The parameters to vary (the others keep their starting values).
    pub free: Vec<FitParameter>,
    /// Nelder-Mead iterations per round.
    pub max_iters: u64,
    /// Rounds: each restarts the simplex around the best point so far
    /// (Nelder-Mead can stall on a degenerate simplex).
    pub rounds: usize,
    /// Relative size of the initial simplex (in log-parameter space).
    pub initial_step: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            free: FitParameter::ALL.to_vec(),
            max_iters: 3000,
            rounds: 4,
            initial_step: 0.3,
        }
    }
}

/// Result of [`commission`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// The fitted machine.
    pub machine: Machine,
    /// Root-mean-square residual over all points (percentage points).
    pub rms_percent: f64,
    /// Largest absolute residual (percentage points).
    pub max_abs_percent: f64,
    /// Nelder-Mead iterations used in all.
    pub iterations: u64,
}

/// Parameter vector in log space (every fitted parameter is positive).
#[derive(Debug, Clone, PartialEq)]
struct LogParams(Vec<f64>);

impl ArgminAdd<LogParams, LogParams> for LogParams {
    fn add(&self, o: &LogParams) -> LogParams {
        LogParams(self.0.iter().zip(&o.0).map(|(a, b)| a + b).collect())
    }
}
impl ArgminSub<LogParams, LogParams> for LogParams {
    fn sub(&self, o: &LogParams) -> LogParams {
        LogParams(self.0.iter().zip(&o.0).map(|(a, b)| a - b).collect())
    }
}
impl ArgminMul<f64, LogParams> for LogParams {
    fn mul(&self, s: &f64) -> LogParams {
        LogParams(self.0.iter().map(|a| a * s).collect())
    }
}

struct Problem<'a> {
    start: &'a MachineParams,
    free: &'a [FitParameter],
    data: &'a CommissioningData,
}

/// Residuals (model - measured, percentage points) times sqrt(weight).
fn residuals(m: &Machine, data: &CommissioningData) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for pdd in &data.pdds {
        let depths: Vec<f64> = pdd.points.iter().map(|p| p.0).collect();
        let model = m.pdd(pdd.field, pdd.ssd_mm, &depths);
        for (v, p) in model.iter().zip(&pdd.points) {
            out.push((v - p.1, pdd.weight));
        }
    }
    for pr in &data.profiles {
        let xs: Vec<f64> = pr.points.iter().map(|p| p.0).collect();
        let model = m.profile(pr.field, pr.ssd_mm, pr.depth_mm, &xs);
        for (v, p) in model.iter().zip(&pr.points) {
            out.push((v - p.1, pr.weight));
        }
    }
    out
}

impl Problem<'_> {
    fn params(&self, x: &LogParams) -> MachineParams {
        let mut p = self.start.clone();
        for (f, v) in self.free.iter().zip(&x.0) {
            *f.slot(&mut p) = v.exp();
        }
        p
    }
}

impl CostFunction for Problem<'_> {
    type Param = LogParams;
    type Output = f64;
    fn cost(&self, x: &LogParams) -> std::result::Result<f64, argmin::core::Error> {
        if x.0.iter().any(|v| !v.is_finite() || v.abs() > 30.0) {
            return Ok(1e30);
        }
        let Ok(m) = Machine::new(self.params(x)) else {
            return Ok(1e30);
        };
        let r = residuals(&m, self.data);
        let c: f64 = r.iter().map(|(e, w)| w * e * e).sum();
        Ok(if c.is_finite() { c } else { 1e30 })
    }
}

fn validate_data(data: &CommissioningData) -> Result<()> {
    let n: usize = data.pdds.iter().map(|p| p.points.len()).sum::<usize>()
        + data.profiles.iter().map(|p| p.points.len()).sum::<usize>();
    if n == 0 {
        return Err(Error::Empty {
            what: "commissioning data".into(),
            reason: "no measured point to fit".into(),
        });
    }
    let field_ok = |f: &Field| {
        f.width_x_mm.is_finite()
            && f.width_x_mm > 0.0
            && f.width_y_mm.is_finite()
            && f.width_y_mm > 0.0
    };
    for (i, p) in data.pdds.iter().enumerate() {
        if !(field_ok(&p.field) && p.ssd_mm.is_finite() && p.ssd_mm > 0.0) {
            return Err(Error::invalid(
                format!("measured PDD {i}"),
                format!("field {:?} / SSD {} mm", p.field, p.ssd_mm),
            ));
        }
        if !(p.weight.is_finite() && p.weight >= 0.0) {
            return Err(Error::invalid(
                format!("measured PDD {i}"),
                format!("weight {}", p.weight),
            ));
        }
        if let Some((k, q)) = p
            .points
            .iter()
            .enumerate()
            .find(|(_, q)| !(q.0.is_finite() && q.0 >= 0.0 && q.1.is_finite() && q.1 >= 0.0))
        {
            return Err(Error::invalid(
                format!("measured PDD {i}, point {k}"),
                format!(
                    "({} mm, {} %): depth and value must be finite and non-negative",
                    q.0, q.1
                ),
            ));
        }
    }
    for (i, p) in data.profiles.iter().enumerate() {
        if !(field_ok(&p.field)
            && p.ssd_mm.is_finite()
            && p.ssd_mm > 0.0
            && p.depth_mm.is_finite()
            && p.depth_mm >= 0.0)
        {
            return Err(Error::invalid(
                format!("measured profile {i}"),
                format!(
                    "field {:?} / SSD {} mm / depth {} mm",
                    p.field, p.ssd_mm, p.depth_mm
                ),
            ));
        }
        if !(p.weight.is_finite() && p.weight >= 0.0) {
            return Err(Error::invalid(
                format!("measured profile {i}"),
                format!("weight {}", p.weight),
            ));
        }
        if let Some((k, q)) = p
            .points
            .iter()
            .enumerate()
            .find(|(_, q)| !(q.0.is_finite() && q.1.is_finite() && q.1 >= 0.0))
        {
            return Err(Error::invalid(
                format!("measured profile {i}, point {k}"),
                format!(
                    "({} mm, {} %): must be finite, value non-negative",
                    q.0, q.1
                ),
            ));
        }
    }
    Ok(())
}

/// Fits the free parameters of `start` to measured data: least squares on
/// the percentage points of every PDD and profile value, minimised with
/// argmin's Nelder-Mead in log-parameter space (so every parameter stays
/// positive), restarted `rounds` times. The calibration of the result is
/// recomputed (1 Gy at the depth of maximum of 10 x 10 cm^2 at SSD = SAD).
///
/// ```no_run
/// use dosepaint_dose::{commission, CommissioningData, Field, FitOptions, Machine, MeasuredPdd};
/// let data = CommissioningData {
///     pdds: vec![MeasuredPdd {
///         field: Field::square(100.0), ssd_mm: 1000.0, weight: 1.0,
///         points: vec![(15.0, 100.0), (50.0, 86.7), (100.0, 67.0), (200.0, 38.7)],
///     }],
///     profiles: vec![],
/// };
/// let report = commission(Machine::generic_6mv().params(), &data, &FitOptions::default())?;
/// std::fs::write("my_linac.json", report.machine.to_json()).unwrap();
/// # Ok::<(), dosepaint_dose::Error>(())
/// ```
///
/// # Errors
/// Invalid or empty data, a start that is not a valid machine, no free
/// parameter, or a solver failure.
pub fn commission(
    start: &MachineParams,
    data: &CommissioningData,
    options: &FitOptions,
) -> Result<FitReport> {
    validate_data(data)?;
    Machine::new(start.clone())?;
    if options.free.is_empty() {
        return Err(Error::invalid("fit options", "no free parameter"));
    }
    if options.rounds == 0 || options.max_iters == 0 {
        return Err(Error::invalid(
            "fit options",
            "rounds and max_iters must be positive",
        ));
    }
    if !(options.initial_step.is_finite() && options.initial_step > 0.0) {
        return Err(Error::invalid(
            "fit options",
            format!("initial_step {}", options.initial_step),
        ));
    }
    let mut free = options.free.clone();
    free.sort_by_key(|f| FitParameter::ALL.iter().position(|a| a == f));
    free.dedup();
    let mut base = start.clone();
    for f in &free {
        let v = f.slot(&mut base);
        if *v <= 0.0 {
            // Log-space needs a positive start: begin from a small value.
            *v = 1e-3;
        }
    }
    let mut x: Vec<f64> = free
        .iter()
        .map(|f| f.slot(&mut base.clone()).ln())
        .collect();
    let mut iterations = 0;
    for round in 0..options.rounds {
        let problem = Problem {
            start: &base,
            free: &free,
            data,
        };
        let step = options.initial_step / (1.0 + round as f64);
        let mut simplex = vec![LogParams(x.clone())];
        for i in 0..x.len() {
            let mut v = x.clone();
            v[i] += step;
            simplex.push(LogParams(v));
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-10)
            .map_err(|e| Error::Fit(e.to_string()))?;
        let res = Executor::new(problem, solver)
            .configure(|s| s.max_iters(options.max_iters))
            .run()
            .map_err(|e| Error::Fit(e.to_string()))?;
        iterations += res.state().get_iter();
        if let Some(best) = res.state().get_best_param() {
            x.clone_from(&best.0);
        }
    }
    let problem = Problem {
        start: &base,
        free: &free,
        data,
    };
    let machine = Machine::new(problem.params(&LogParams(x)))?;
    let r = residuals(&machine, data);
    let n = r.len() as f64;
    let rms = (r.iter().map(|(e, _)| e * e).sum::<f64>() / n).sqrt();
    let max = r.iter().map(|(e, _)| e.abs()).fold(0.0, f64::max);
    Ok(FitReport {
        machine,
        rms_percent: rms,
        max_abs_percent: max,
        iterations,
    })
}
