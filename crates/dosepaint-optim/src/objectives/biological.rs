//! Biological objectives on top of `dosepaint-radiobio`: gEUD limits, the
//! Poisson log-TCP of a target (maximized) and the NTCP of an organ
//! (minimized). The formulas and their gradients are radiobio's; these types
//! gather the doses of their rows, call it, and scatter the gradient back.
//!
//! A model that cannot be evaluated (it returns an error, e.g. an infinite
//! derivative) makes the objective's value NaN, which the problem reports as
//! an error naming the objective.

use std::sync::MutexGuard;

use dosepaint_core::{DoseInfluence, Structure};
use dosepaint_radiobio::{
    Geud, Lkb, LogitNtcp, LqParams, PoissonTcp, RelativeSeriality, TcpVoxelData, VoxelValues,
    Weights,
};
use serde::{Deserialize, Serialize};

use crate::error::non_negative;
use crate::objective::{CurvatureKind, Objective, Scratch, structure_rows};
use crate::objectives::physical::Sense;
use crate::{Error, Result};

/// Smallest dose handed to a radiobiological model: gEUD with `a < 1` has an
/// infinite derivative at exactly 0 Gy, which only the very first iterate
/// (all weights 0) can reach.
const DOSE_FLOOR_GY: f64 = 1e-9;

/// Adds `scale * local[k]` into `grad[rows[k]]`.
fn scatter(rows: &[u32], local: &[f64], scale: f64, grad: &mut [f64]) {
    for (&r, &g) in rows.iter().zip(local) {
        grad[r as usize] += scale * g;
    }
}

/// The scratch space of a radiobiological objective: the doses of its rows
/// as the model sees them (floored at [`DOSE_FLOOR_GY`]) and the model's
/// gradient with respect to them.
#[derive(Debug, Clone, Default, PartialEq)]
struct ModelInput {
    doses: Scratch,
    grad: Scratch,
}

impl ModelInput {
    /// Gathers the doses of `rows` and runs `model` on them.
    fn eval<R>(&self, rows: &[u32], dose: &[f64], model: impl FnOnce(&[f64]) -> R) -> R {
        let mut buf = self.doses.get(rows.len());
        for (b, &r) in buf.iter_mut().zip(rows) {
            *b = dose[r as usize].max(DOSE_FLOOR_GY);
        }
        model(&buf)
    }

    /// Gathers the doses of `rows` and runs `model` on them with a buffer for
    /// its gradient; returns the model's value and that gradient (one entry
    /// per row), or `None` when the model fails.
    fn eval_with_gradient<E>(
        &self,
        rows: &[u32],
        dose: &[f64],
        model: impl FnOnce(&[f64], &mut [f64]) -> Result<f64, E>,
    ) -> Option<(f64, MutexGuard<'_, Vec<f64>>)> {
        let mut local = self.grad.get(rows.len());
        let value = self
            .eval(rows, dose, |doses| model(doses, &mut local))
            .ok()?;
        Some((value, local))
    }
}

/// A gEUD limit: `f = max(0, gEUD - L)^2` ([`Sense::AtMost`], organs, `a >= 1`)
/// or `f = max(0, L - gEUD)^2` ([`Sense::AtLeast`], targets, `a < 0`), in Gy^2,
/// with Niemierko's `gEUD = (mean_i d_i^a)^(1/a)` from
/// [`dosepaint_radiobio::Geud`] (every voxel the same volume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeudLimit {
    name: String,
    rows: Vec<u32>,
    model: Geud,
    limit_gy: f64,
    sense: Sense,
    #[serde(skip)]
    input: ModelInput,
}

impl GeudLimit {
    /// A gEUD limit with exponent `a` over `structure`.
    ///
    /// # Errors
    /// Empty structure, grid mismatch, a non-finite `a` or a negative limit.
    pub fn new(
        influence: &DoseInfluence,
        structure: &Structure,
        a: f64,
        sense: Sense,
        limit_gy: f64,
    ) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        Self::from_rows(
            format!(
                "{} gEUD(a={a}) {} {limit_gy} Gy",
                structure.name(),
                sense.symbol()
            ),
            rows,
            Geud::new(a)?,
            sense,
            limit_gy,
        )
    }

    /// From explicit rows and a gEUD model.
    ///
    /// # Errors
    /// A negative or non-finite limit.
    pub fn from_rows(
        name: impl Into<String>,
        rows: Vec<u32>,
        model: Geud,
        sense: Sense,
        limit_gy: f64,
    ) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            rows,
            model,
            limit_gy: non_negative("gEUD limit (Gy)", limit_gy)?,
            sense,
            input: ModelInput::default(),
        })
    }

    /// The gEUD (Gy) of the rows' doses, NaN if the model fails.
    pub fn geud_gy(&self, dose_rows: &[f64]) -> f64 {
        self.input.eval(&self.rows, dose_rows, |doses| {
            self.model
                .value(doses, Weights::Uniform)
                .unwrap_or(f64::NAN)
        })
    }

    fn excess(&self, g: f64) -> f64 {
        self.sense.excess(g, self.limit_gy)
    }
}

impl Objective for GeudLimit {
    fn name(&self) -> &str {
        &self.name
    }

    fn rows(&self) -> &[u32] {
        &self.rows
    }

    fn value_and_gradient(&self, dose_rows: &[f64], weight: f64, grad_rows: &mut [f64]) -> f64 {
        let Some((g, local)) =
            self.input
                .eval_with_gradient(&self.rows, dose_rows, |doses, local| {
                    self.model
                        .value_and_gradient(doses, Weights::Uniform, local)
                })
        else {
            return f64::NAN;
        };
        let e = self.excess(g);
        if e <= 0.0 {
            return 0.0;
        }
        scatter(
            &self.rows,
            &local,
            weight * 2.0 * e * self.sense.sign(),
            grad_rows,
        );
        e * e
    }

    fn value(&self, dose_rows: &[f64]) -> f64 {
        let e = self.excess(self.geud_gy(dose_rows));
        if e > 0.0 {
            e * e
        } else if e.is_nan() {
            e
        } else {
            0.0
        }
    }

    fn add_curvature(&self, _: &[f64], _: f64, _: &mut [f64]) -> CurvatureKind {
        CurvatureKind::Unavailable
    }

    fn validate(&self, n_rows: usize) -> Result<()> {
        crate::objective::check_rows(&self.name, &self.rows, n_rows)?;
        non_negative("gEUD limit (Gy)", self.limit_gy).map(|_| ())
    }
}

/// The negative Poisson log-TCP of a target, `f = -ln TCP` (minimizing it
/// maximizes TCP), with `ln TCP = -sum_i N_i exp(-(alpha_i d_i + beta_i
/// d_i^2 / n))` from [`dosepaint_radiobio::PoissonTcp`]; `N_i = rho_i V` the
/// clonogens of voxel `i` (density per cm^3 times the voxel volume).
///
/// Per-voxel clonogen densities (e.g. from ADC) and alpha maps (e.g. hypoxia
/// via an OER) make it a dose-painting objective in its own right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LogTcpSpec", into = "LogTcpSpec")]
pub struct LogTcp {
    spec: LogTcpSpec,
    model: PoissonTcp,
    input: ModelInput,
}

/// The serialised form of [`LogTcp`]: its inputs, validated on reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LogTcpSpec {
    name: String,
    rows: Vec<u32>,
    fractions: u32,
    voxel_volume_cm3: f64,
    clonogen_density_per_cm3: Vec<f64>,
    alpha_per_gy: Vec<f64>,
    beta_per_gy2: Vec<f64>,
}

impl TryFrom<LogTcpSpec> for LogTcp {
    type Error = Error;
    fn try_from(spec: LogTcpSpec) -> Result<Self> {
        let n = spec.rows.len();
        for (what, v) in [
            ("clonogen densities", spec.clonogen_density_per_cm3.len()),
            ("alpha map", spec.alpha_per_gy.len()),
            ("beta map", spec.beta_per_gy2.len()),
        ] {
            if v != n {
                return Err(Error::length(format!("{what} of \"{}\"", spec.name), n, v));
            }
        }
        let model = PoissonTcp::new(
            n,
            spec.fractions,
            TcpVoxelData {
                clonogen_density_per_cm3: VoxelValues::PerVoxel(&spec.clonogen_density_per_cm3),
                voxel_volume_cm3: VoxelValues::Uniform(spec.voxel_volume_cm3),
                alpha_per_gy: VoxelValues::PerVoxel(&spec.alpha_per_gy),
                beta_per_gy2: VoxelValues::PerVoxel(&spec.beta_per_gy2),
            },
        )?;
        Ok(Self {
            spec,
            model,
            input: ModelInput::default(),
        })
    }
}

impl From<LogTcp> for LogTcpSpec {
    fn from(o: LogTcp) -> Self {
        o.spec
    }
}

impl LogTcp {
    /// Uniform radiosensitivity `lq` and clonogen density over `structure`,
    /// treated in `fractions` fractions; the voxel volume is the grid's.
    ///
    /// # Errors
    /// Empty structure, grid mismatch, or invalid model parameters.
    pub fn uniform(
        influence: &DoseInfluence,
        structure: &Structure,
        lq: LqParams,
        clonogen_density_per_cm3: f64,
        fractions: u32,
    ) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        let n = rows.len();
        Self::from_rows(
            format!("{} -ln TCP", structure.name()),
            rows,
            fractions,
            influence.grid().voxel_volume_cm3(),
            vec![clonogen_density_per_cm3; n],
            vec![lq.alpha_per_gy(); n],
            vec![lq.beta_per_gy2(); n],
        )
    }

    /// Per-row clonogen densities and LQ parameters (one entry per row).
    ///
    /// # Errors
    /// Lengths that differ from the rows, or values radiobio refuses
    /// (negative densities, alpha <= 0, ...; the voxel is named).
    #[allow(clippy::too_many_arguments)]
    pub fn from_rows(
        name: impl Into<String>,
        rows: Vec<u32>,
        fractions: u32,
        voxel_volume_cm3: f64,
        clonogen_density_per_cm3: Vec<f64>,
        alpha_per_gy: Vec<f64>,
        beta_per_gy2: Vec<f64>,
    ) -> Result<Self> {
        Self::try_from(LogTcpSpec {
            name: name.into(),
            rows,
            fractions,
            voxel_volume_cm3,
            clonogen_density_per_cm3,
            alpha_per_gy,
            beta_per_gy2,
        })
    }

    /// `ln TCP` of the rows' doses (NaN if the model fails).
    pub fn log_tcp(&self, dose_rows: &[f64]) -> f64 {
        self.input.eval(&self.spec.rows, dose_rows, |doses| {
            self.model.log_tcp(doses).unwrap_or(f64::NAN)
        })
    }
}

impl Objective for LogTcp {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn rows(&self) -> &[u32] {
        &self.spec.rows
    }

    fn value_and_gradient(&self, dose_rows: &[f64], weight: f64, grad_rows: &mut [f64]) -> f64 {
        let rows = &self.spec.rows;
        let Some((l, local)) = self
            .input
            .eval_with_gradient(rows, dose_rows, |doses, local| {
                self.model.log_tcp_and_gradient(doses, local)
            })
        else {
            return f64::NAN;
        };
        scatter(rows, &local, -weight, grad_rows);
        -l
    }

    fn value(&self, dose_rows: &[f64]) -> f64 {
        -self.log_tcp(dose_rows)
    }
}

/// An NTCP model of `dosepaint-radiobio`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NtcpModel {
    /// Lyman-Kutcher-Burman.
    Lkb(Lkb),
    /// Niemierko's logistic EUD model.
    Logit(LogitNtcp),
    /// Källman's relative seriality.
    RelativeSeriality(RelativeSeriality),
}

/// The NTCP of an organ, `f = NTCP` (dimensionless, in `[0, 1]`; minimized),
/// every voxel the same relative volume. Parameters of published fits refer
/// to doses in 2 Gy fractions: the objective applies them to physical total
/// doses as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ntcp {
    name: String,
    rows: Vec<u32>,
    model: NtcpModel,
    #[serde(skip)]
    input: ModelInput,
}

impl Ntcp {
    /// NTCP of `structure` with `model`.
    ///
    /// # Errors
    /// Empty structure or grid mismatch.
    pub fn new(influence: &DoseInfluence, structure: &Structure, model: NtcpModel) -> Result<Self> {
        let rows = structure_rows(influence, structure)?;
        Ok(Self::from_rows(
            format!("{} NTCP", structure.name()),
            rows,
            model,
        ))
    }

    /// From explicit rows.
    pub fn from_rows(name: impl Into<String>, rows: Vec<u32>, model: NtcpModel) -> Self {
        Self {
            name: name.into(),
            rows,
            model,
            input: ModelInput::default(),
        }
    }

    fn eval(&self, doses: &[f64], grad: Option<&mut [f64]>) -> dosepaint_radiobio::Result<f64> {
        let w = Weights::Uniform;
        match (self.model, grad) {
            (NtcpModel::Lkb(m), None) => m.ntcp(doses, w),
            (NtcpModel::Lkb(m), Some(g)) => m.ntcp_and_gradient(doses, w, g),
            (NtcpModel::Logit(m), None) => m.ntcp(doses, w),
            (NtcpModel::Logit(m), Some(g)) => m.ntcp_and_gradient(doses, w, g),
            (NtcpModel::RelativeSeriality(m), None) => m.ntcp(doses, w),
            (NtcpModel::RelativeSeriality(m), Some(g)) => m.ntcp_and_gradient(doses, w, g),
        }
    }
}

impl Objective for Ntcp {
    fn name(&self) -> &str {
        &self.name
    }

    fn rows(&self) -> &[u32] {
        &self.rows
    }

    fn value_and_gradient(&self, dose_rows: &[f64], weight: f64, grad_rows: &mut [f64]) -> f64 {
        let Some((p, local)) =
            self.input
                .eval_with_gradient(&self.rows, dose_rows, |doses, local| {
                    self.eval(doses, Some(local))
                })
        else {
            return f64::NAN;
        };
        scatter(&self.rows, &local, weight, grad_rows);
        p
    }

    fn value(&self, dose_rows: &[f64]) -> f64 {
        self.input.eval(&self.rows, dose_rows, |doses| {
            self.eval(doses, None).unwrap_or(f64::NAN)
        })
    }
}
