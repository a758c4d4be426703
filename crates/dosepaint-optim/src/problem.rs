//! The fluence-optimization problem: weighted objectives on `D w`.

use std::sync::Mutex;

use dosepaint_core::DoseInfluence;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bounds::{Bounds, BoxProblem};
use crate::constraint::{Constraint, ConstraintReport, Multipliers};
use crate::objective::{CurvatureKind, FluenceObjective, Objective};
use crate::solver::Preconditioner;
use crate::{Error, Result};

/// One weighted objective of a problem.
#[derive(Debug)]
struct Term {
    weight: f64,
    objective: Box<dyn Objective>,
}

/// One weighted fluence objective of a problem.
#[derive(Debug)]
struct FluenceTerm {
    weight: f64,
    objective: Box<dyn FluenceObjective>,
}

/// The value of one objective at some weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveValue {
    /// The objective's name.
    pub name: String,
    /// Its weight in the total.
    pub weight: f64,
    /// Its own (unweighted) value.
    pub value: f64,
}

/// Which preconditioner [`FluenceProblem::preconditioner`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PreconditionerKind {
    /// The inverse diagonal of the Gauss-Newton Hessian.
    Jacobi,
    /// The inverse of its block diagonal, one dense block per beam.
    BeamBlocks,
}

/// The median of the positive entries and 1e-3 of it (1 and 0 if none).
fn median_floor(diag: &[f64]) -> (f64, f64) {
    let mut positive: Vec<f64> = diag.iter().copied().filter(|&d| d > 0.0).collect();
    if positive.is_empty() {
        return (1.0, 0.0);
    }
    let mid = positive.len() / 2;
    let (_, median, _) = positive.select_nth_unstable_by(mid, f64::total_cmp);
    (*median, 1e-3 * *median)
}

/// Row-sized buffers reused by every evaluation.
#[derive(Debug, Default)]
struct Buffers {
    /// `D x` of the last full evaluation (or committed line point).
    dose: Vec<f64>,
    grad_rows: Vec<f64>,
    /// The weights `x` of `dose`.
    x: Vec<f64>,
    /// Line search: `D p`, the trial dose, the direction, the trial
    /// weights and their fluence gradient, and the `t` whose row gradient
    /// is in `grad_rows`.
    dp: Vec<f64>,
    dose_t: Vec<f64>,
    p: Vec<f64>,
    x_t: Vec<f64>,
    fluence_grad: Vec<f64>,
    /// Throw-away gradient of the fluence terms when only their values are
    /// wanted ([`FluenceProblem::value`]).
    fluence_scratch: Vec<f64>,
    last_t: Option<f64>,
    /// The row part of `F` at `last_t`.
    last_rows: f64,
}

/// Fluence optimization: minimize `F(w) = sum_k c_k f_k(D w) + sum_l e_l
/// g_l(w)` over beamlet weights `l <= w <= u` (by default `w >= 0`), where
/// `f_k` are dose [`Objective`]s with weights `c_k`, `g_l` fluence objectives
/// (e.g. smoothness), and `D` the [`DoseInfluence`] matrix. Hard
/// [`Constraint`]s are added by the augmented-Lagrangian loop of
/// [`optimize`](crate::optimize).
///
/// One evaluation of `F` and its gradient `D^T grad_d F + grad_w F` costs one
/// `D w` and one `D^T g`; the row-sized buffers are allocated once.
///
/// It implements argmin's [`CostFunction`](argmin::core::CostFunction) and
/// [`Gradient`](argmin::core::Gradient) over `Vec<f64>`, so argmin's own
/// solvers run on it too, and this crate's [`BoxProblem`].
#[derive(Debug)]
pub struct FluenceProblem<'a> {
    influence: &'a DoseInfluence,
    terms: Vec<Term>,
    fluence_terms: Vec<FluenceTerm>,
    constraints: Vec<Constraint>,
    multipliers: Vec<Multipliers>,
    bounds: Bounds,
    buffers: Mutex<Buffers>,
}

fn check_weight(name: &str, weight: f64) -> Result<f64> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(weight)
    } else {
        Err(Error::invalid(
            format!("weight of objective \"{name}\""),
            format!("{weight} must be finite and non-negative"),
        ))
    }
}

impl<'a> FluenceProblem<'a> {
    /// A problem on `influence` with bounds `w >= 0` and no objective yet.
    ///
    /// # Errors
    /// [`Error::IllPosed`] for a matrix without rows, without beamlets or
    /// with no non-zero entry.
    pub fn new(influence: &'a DoseInfluence) -> Result<Self> {
        if influence.n_beamlets() == 0 || influence.n_rows() == 0 {
            return Err(Error::IllPosed(format!(
                "the dose-influence matrix has {} rows and {} beamlets; both must be positive",
                influence.n_rows(),
                influence.n_beamlets()
            )));
        }
        if influence.nnz() == 0 {
            return Err(Error::IllPosed(
                "the dose-influence matrix is all zero: no beamlet deposits dose anywhere".into(),
            ));
        }
        Ok(Self {
            influence,
            terms: Vec::new(),
            fluence_terms: Vec::new(),
            constraints: Vec::new(),
            multipliers: Vec::new(),
            bounds: Bounds::non_negative(influence.n_beamlets()),
            buffers: Mutex::new(Buffers::default()),
        })
    }

    /// Adds a dose objective with weight `weight` (finite, `>= 0`).
    ///
    /// # Errors
    /// An invalid weight, or an objective that fails its
    /// [`Objective::validate`] against this matrix (empty, rows out of range,
    /// bad parameters).
    pub fn add_objective(
        &mut self,
        weight: f64,
        objective: impl Objective + 'static,
    ) -> Result<&mut Self> {
        self.add_boxed_objective(weight, Box::new(objective))
    }

    /// As [`FluenceProblem::add_objective`], for a boxed objective.
    ///
    /// # Errors
    /// As [`FluenceProblem::add_objective`].
    pub fn add_boxed_objective(
        &mut self,
        weight: f64,
        objective: Box<dyn Objective>,
    ) -> Result<&mut Self> {
        check_weight(objective.name(), weight)?;
        objective.validate(self.influence.n_rows())?;
        self.terms.push(Term { weight, objective });
        Ok(self)
    }

    /// Adds an objective on the beamlet weights (e.g. [`FluenceSmoothness`](crate::FluenceSmoothness)).
    ///
    /// # Errors
    /// An invalid weight or an objective that does not fit the matrix's beamlets.
    pub fn add_fluence_objective(
        &mut self,
        weight: f64,
        objective: impl FluenceObjective + 'static,
    ) -> Result<&mut Self> {
        check_weight(objective.name(), weight)?;
        objective.validate(self.influence.n_beamlets())?;
        self.fluence_terms.push(FluenceTerm {
            weight,
            objective: Box::new(objective),
        });
        Ok(self)
    }

    /// Adds a hard constraint (enforced by [`optimize`](crate::optimize)'s
    /// augmented-Lagrangian loop).
    ///
    /// # Errors
    /// A constraint whose rows do not fit the matrix.
    pub fn add_constraint(&mut self, constraint: Constraint) -> Result<&mut Self> {
        constraint.validate(self.influence.n_rows())?;
        self.multipliers.push(constraint.initial_multipliers(1.0));
        self.constraints.push(constraint);
        Ok(self)
    }

    /// Replaces the default bounds `w >= 0`.
    ///
    /// # Errors
    /// Bounds of the wrong length, or a negative lower bound (beamlet
    /// weights are fluences).
    pub fn set_bounds(&mut self, bounds: Bounds) -> Result<&mut Self> {
        if bounds.len() != self.influence.n_beamlets() {
            return Err(Error::length(
                "bounds",
                self.influence.n_beamlets(),
                bounds.len(),
            ));
        }
        if let Some(j) = bounds.lower().iter().position(|&l| l < 0.0) {
            return Err(Error::invalid(
                "lower bound",
                format!(
                    "beamlet {j}: {} is negative; fluence cannot be",
                    bounds.lower()[j]
                ),
            ));
        }
        self.bounds = bounds;
        Ok(self)
    }

    /// Sets the same upper bound on every beamlet weight.
    ///
    /// # Errors
    /// A non-positive or NaN bound.
    pub fn set_upper_bound(&mut self, upper: f64) -> Result<&mut Self> {
        if upper.is_nan() || upper <= 0.0 {
            return Err(Error::invalid(
                "upper bound",
                format!("{upper} must be positive"),
            ));
        }
        let n = self.influence.n_beamlets();
        self.set_bounds(Bounds::new(vec![0.0; n], vec![upper; n])?)
    }

    /// The matrix.
    pub fn influence(&self) -> &'a DoseInfluence {
        self.influence
    }

    /// Number of beamlets (variables).
    pub fn n_beamlets(&self) -> usize {
        self.influence.n_beamlets()
    }

    /// The bounds.
    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// Number of dose and fluence objectives.
    pub fn n_objectives(&self) -> usize {
        self.terms.len() + self.fluence_terms.len()
    }

    /// The constraints.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// Checks that there is something to optimize.
    pub(crate) fn ensure_ready(&self) -> Result<()> {
        if self.terms.is_empty() && self.fluence_terms.is_empty() {
            return Err(Error::Empty {
                what: "fluence problem".into(),
                reason: "it has no objective; add at least one".into(),
            });
        }
        Ok(())
    }

    /// Checks a weight vector: length, finite, inside the bounds.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`], [`Error::NonFinite`] or
    /// [`Error::InvalidParameter`] naming the beamlet.
    pub fn check_weights(&self, w: &[f64]) -> Result<()> {
        if w.len() != self.n_beamlets() {
            return Err(Error::length("beamlet weights", self.n_beamlets(), w.len()));
        }
        if let Some(j) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                context: "beamlet weights".into(),
                location: format!("beamlet {j}"),
            });
        }
        if let Some((j, v)) = self.bounds.first_violation(w) {
            return Err(Error::invalid(
                "beamlet weights",
                format!(
                    "beamlet {j} = {v} lies outside its bounds [{}, {}]",
                    self.bounds.lower()[j],
                    self.bounds.upper()[j]
                ),
            ));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffers> {
        let mut b = self
            .buffers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = self.influence.n_rows();
        if b.dose.len() != n {
            b.dose = vec![0.0; n];
            b.grad_rows = vec![0.0; n];
        }
        b
    }

    /// `F(w)` and its gradient (written into `grad`, one entry per beamlet):
    /// one `D w`, one `D^T g`, no allocation after the first call. Includes
    /// the augmented-Lagrangian terms of the constraints at the current
    /// multipliers.
    ///
    /// # Errors
    /// Wrong lengths, or a non-finite value (the objective is named).
    pub fn value_and_gradient(&self, w: &[f64], grad: &mut [f64]) -> Result<f64> {
        if grad.len() != self.n_beamlets() {
            return Err(Error::length("gradient", self.n_beamlets(), grad.len()));
        }
        let mut guard = self.lock();
        let Buffers {
            dose,
            grad_rows,
            x,
            last_t,
            ..
        } = &mut *guard;
        self.influence.dose_into(w, dose)?;
        x.clear();
        x.extend_from_slice(w);
        *last_t = None;
        let mut total = self.row_terms(dose, grad_rows)?;
        self.influence.transpose_product_into(grad_rows, grad)?;
        for t in &self.fluence_terms {
            let v = t.objective.value_and_gradient(w, t.weight, grad);
            total += t.weight * Self::finite(v, t.objective.name())?;
        }
        if let Some(j) = grad.iter().position(|g| !g.is_finite()) {
            return Err(Error::NonFinite {
                context: "objective gradient".into(),
                location: format!("beamlet {j}"),
            });
        }
        Ok(total)
    }

    fn finite(v: f64, name: &str) -> Result<f64> {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(Error::NonFinite {
                context: format!("objective \"{name}\""),
                location: format!("its value ({v})"),
            })
        }
    }

    /// The row part of `F` at `dose` (objectives and constraint terms),
    /// its row gradient written into `grad_rows`.
    fn row_terms(&self, dose: &[f64], grad_rows: &mut [f64]) -> Result<f64> {
        grad_rows.fill(0.0);
        let mut total = 0.0;
        for t in &self.terms {
            let v = t.objective.value_and_gradient(dose, t.weight, grad_rows);
            total += t.weight * Self::finite(v, t.objective.name())?;
        }
        for (c, m) in self.constraints.iter().zip(&self.multipliers) {
            total += Self::finite(c.lagrangian_term(m, dose, grad_rows), c.name())?;
        }
        Ok(total)
    }

    /// Line search support (see [`BoxProblem::line_prepare`]): computes
    /// `D p` once for the segment `x + t p` from the last evaluated `x`.
    fn prepare_line(&self, p: &[f64]) -> Result<()> {
        let mut guard = self.lock();
        let b = &mut *guard;
        let n = self.n_beamlets();
        if b.x.len() != n || p.len() != n {
            return Err(Error::invalid(
                "line search",
                "prepare_line needs a previous evaluation and a direction of one entry per beamlet",
            ));
        }
        if b.dp.len() != b.dose.len() {
            b.dp = vec![0.0; b.dose.len()];
            b.dose_t = vec![0.0; b.dose.len()];
        }
        self.influence.dose_into(p, &mut b.dp)?;
        b.p.clear();
        b.p.extend_from_slice(p);
        b.x_t.resize(n, 0.0);
        b.fluence_grad.resize(n, 0.0);
        b.last_t = None;
        Ok(())
    }

    /// `F(x + t p)` and `dF/dt` without a matrix product.
    fn line_value(&self, t: f64) -> Result<(f64, f64)> {
        self.line_value_in(&mut self.lock(), t)
    }

    /// [`FluenceProblem::line_value`] on buffers already locked.
    fn line_value_in(&self, b: &mut Buffers, t: f64) -> Result<(f64, f64)> {
        for ((dt, d), dp) in b.dose_t.iter_mut().zip(&b.dose).zip(&b.dp) {
            *dt = d + t * dp;
        }
        let mut total = self.row_terms(&b.dose_t, &mut b.grad_rows)?;
        b.last_rows = total;
        let mut slope: f64 = b.grad_rows.iter().zip(&b.dp).map(|(g, d)| g * d).sum();
        if !self.fluence_terms.is_empty() {
            for ((xt, x), p) in b.x_t.iter_mut().zip(&b.x).zip(&b.p) {
                *xt = x + t * p;
            }
            b.fluence_grad.fill(0.0);
            for ft in &self.fluence_terms {
                let v = ft
                    .objective
                    .value_and_gradient(&b.x_t, ft.weight, &mut b.fluence_grad);
                total += ft.weight * Self::finite(v, ft.objective.name())?;
            }
            slope += b
                .fluence_grad
                .iter()
                .zip(&b.p)
                .map(|(g, p)| g * p)
                .sum::<f64>();
        }
        b.last_t = Some(t);
        Ok((total, slope))
    }

    /// Moves to `x + t p`: writes the point into `x_out` and the gradient
    /// into `grad` (one `D^T g`), returns `F`.
    fn commit_line(&self, t: f64, x_out: &mut [f64], grad: &mut [f64]) -> Result<f64> {
        let mut guard = self.lock();
        let b = &mut *guard;
        if !b.last_t.is_some_and(|l| l.total_cmp(&t).is_eq()) {
            self.line_value_in(b, t)?;
        }
        let mut total = b.last_rows;
        std::mem::swap(&mut b.dose, &mut b.dose_t);
        for ((xo, x), p) in x_out.iter_mut().zip(&b.x).zip(&b.p) {
            *xo = x + t * p;
        }
        b.x.clear();
        b.x.extend_from_slice(x_out);
        b.last_t = None;
        self.influence.transpose_product_into(&b.grad_rows, grad)?;
        for ft in &self.fluence_terms {
            let v = ft.objective.value_and_gradient(x_out, ft.weight, grad);
            total += ft.weight * Self::finite(v, ft.objective.name())?;
        }
        Ok(total)
    }

    /// `F(w)` alone (one `D w`), without the constraint terms.
    ///
    /// # Errors
    /// Wrong length or a non-finite value.
    pub fn value(&self, w: &[f64]) -> Result<f64> {
        let mut guard = self.lock();
        let Buffers {
            dose,
            fluence_scratch,
            ..
        } = &mut *guard;
        self.influence.dose_into(w, dose)?;
        self.objective_total(dose, w, fluence_scratch)
    }

    /// `F` at `dose = D w` (without constraint terms); `scratch` receives
    /// the fluence terms' (unused) gradients, so a reused buffer avoids an
    /// allocation per call.
    fn objective_total(&self, dose: &[f64], w: &[f64], scratch: &mut Vec<f64>) -> Result<f64> {
        let mut total = 0.0;
        for t in &self.terms {
            total += t.weight * Self::finite(t.objective.value(dose), t.objective.name())?;
        }
        if !self.fluence_terms.is_empty() {
            scratch.resize(w.len(), 0.0);
            for t in &self.fluence_terms {
                let v = t.objective.value_and_gradient(w, 0.0, scratch);
                total += t.weight * Self::finite(v, t.objective.name())?;
            }
        }
        Ok(total)
    }

    /// The value of every objective (in the order they were added; dose
    /// objectives first, then fluence objectives).
    ///
    /// # Errors
    /// Wrong length.
    pub fn objective_values(&self, w: &[f64]) -> Result<Vec<ObjectiveValue>> {
        let dose = self.influence.dose(w)?;
        let mut out: Vec<ObjectiveValue> = self
            .terms
            .iter()
            .map(|t| ObjectiveValue {
                name: t.objective.name().to_string(),
                weight: t.weight,
                value: t.objective.value(&dose),
            })
            .collect();
        let mut scratch = vec![0.0; w.len()];
        for t in &self.fluence_terms {
            out.push(ObjectiveValue {
                name: t.objective.name().to_string(),
                weight: t.weight,
                value: t.objective.value_and_gradient(w, 0.0, &mut scratch),
            });
        }
        Ok(out)
    }

    /// How every constraint stands at `w`.
    ///
    /// # Errors
    /// Wrong length.
    pub fn constraint_reports(&self, w: &[f64]) -> Result<Vec<ConstraintReport>> {
        let dose = self.influence.dose(w)?;
        Ok(self.constraints.iter().map(|c| c.report(&dose)).collect())
    }

    /// Resets the multipliers and sets the penalty parameter of every
    /// constraint.
    pub(crate) fn reset_multipliers(&mut self, mu: f64) {
        self.multipliers = self
            .constraints
            .iter()
            .map(|c| c.initial_multipliers(mu))
            .collect();
    }

    /// Updates the multipliers at `w`; returns the largest scaled violation
    /// of each constraint.
    pub(crate) fn update_multipliers(&mut self, w: &[f64]) -> Result<Vec<f64>> {
        let dose = self.influence.dose(w)?;
        Ok(self
            .constraints
            .iter()
            .zip(self.multipliers.iter_mut())
            .map(|(c, m)| c.update_multipliers(m, &dose))
            .collect())
    }

    /// Multiplies the penalty parameter of constraint `k` by `factor`.
    pub(crate) fn grow_penalty(&mut self, k: usize, factor: f64) {
        self.multipliers[k].mu *= factor;
    }

    /// The best uniform plan: `w = c 1` with `c >= 0` minimizing `F(c 1)`
    /// (clamped into the bounds). Costs one `D w` plus objective
    /// evaluations on the rows (a bracketing scan and a golden-section
    /// search; `D (c 1) = c D 1`).
    ///
    /// # Errors
    /// [`Error::IllPosed`] if no beamlet reaches any objective's rows.
    pub fn uniform_start(&self) -> Result<Vec<f64>> {
        let n = self.n_beamlets();
        let ones = vec![1.0; n];
        let d1 = self.influence.dose(&ones)?;
        let reached = self
            .terms
            .iter()
            .any(|t| t.objective.rows().iter().any(|&r| d1[r as usize] > 0.0));
        if !reached && self.fluence_terms.is_empty() {
            return Err(Error::IllPosed(
                "no beamlet deposits dose in the rows of any objective".into(),
            ));
        }
        // Initial guess: mean prescribed dose over mean dose of D 1 on the
        // prescribed objectives' rows, else the mean dose of D 1 over all
        // objective rows scaled to 1 Gy.
        let mut num = 0.0;
        let mut den = 0.0;
        for t in &self.terms {
            if let Some(p) = t.objective.mean_prescribed_dose() {
                let rows = t.objective.rows();
                let m = rows.iter().map(|&r| d1[r as usize]).sum::<f64>() / rows.len() as f64;
                num += p * rows.len() as f64;
                den += m * rows.len() as f64;
            }
        }
        let mean_d1 = d1.iter().sum::<f64>() / d1.len() as f64;
        let c0 = if num > 0.0 && den > 0.0 {
            num / den
        } else if mean_d1 > 0.0 {
            1.0 / mean_d1
        } else {
            1.0
        };
        let mut scaled = vec![0.0; d1.len()];
        let mut wv = vec![0.0; n];
        let mut scratch = Vec::new();
        let mut phi = |c: f64| -> Result<f64> {
            for (s, d) in scaled.iter_mut().zip(&d1) {
                *s = c * d;
            }
            wv.fill(c);
            self.objective_total(&scaled, &wv, &mut scratch)
        };
        let mut best = (0.0, phi(0.0)?);
        for k in -12..=12 {
            let c = c0 * 2f64.powi(k);
            let v = phi(c)?;
            if v < best.1 {
                best = (c, v);
            }
        }
        if best.0 > 0.0 {
            // Golden section on [c/2, 2c].
            let (mut a, mut b) = (best.0 / 2.0, best.0 * 2.0);
            let r = 0.5 * (5f64.sqrt() - 1.0);
            let mut x1 = b - r * (b - a);
            let mut x2 = a + r * (b - a);
            let (mut f1, mut f2) = (phi(x1)?, phi(x2)?);
            for _ in 0..40 {
                if f1 <= f2 {
                    b = x2;
                    x2 = x1;
                    f2 = f1;
                    x1 = b - r * (b - a);
                    f1 = phi(x1)?;
                } else {
                    a = x1;
                    x1 = x2;
                    f1 = f2;
                    x2 = a + r * (b - a);
                    f2 = phi(x2)?;
                }
            }
            let c = if f1 <= f2 { x1 } else { x2 };
            if f1.min(f2) < best.1 {
                best = (c, f1.min(f2));
            }
        }
        let mut w = vec![best.0; n];
        self.bounds.project(&mut w);
        Ok(w)
    }

    /// The row curvature `h` of the dose objectives at `D w`
    /// ([`Objective::add_curvature`]).
    fn row_curvature(&self, w: &[f64]) -> Result<Vec<f64>> {
        let dose = self.influence.dose(w)?;
        let mut h = vec![0.0; dose.len()];
        for t in &self.terms {
            t.objective.add_curvature(&dose, t.weight, &mut h);
        }
        Ok(h)
    }

    /// A preconditioner at `w` from the Gauss-Newton Hessian
    /// `G = D^T diag(h) D + (fluence terms)`, `h` the objectives' row
    /// curvature ([`Objective::add_curvature`]) at `D w`:
    ///
    /// * [`PreconditionerKind::Jacobi`]: `P = diag(G)^-1`;
    /// * [`PreconditionerKind::BeamBlocks`]: `P` is the inverse of the block
    ///   diagonal of `G` with one block per beam (beamlets of one beam
    ///   overlap strongly, those of different beams much less).
    ///
    /// Beamlets whose diagonal is zero (or below 1e-3 of the median) get the
    /// median on the diagonal; each block then gets `0.1 max(mean of its
    /// diagonal, median)` added to its diagonal, so it is positive definite
    /// and directions the curvature at `w` does not see stay bounded. Costs
    /// one `D w` and one pass over the rows with curvature.
    ///
    /// # Errors
    /// Wrong length.
    pub fn preconditioner(&self, w: &[f64], kind: PreconditionerKind) -> Result<Preconditioner> {
        let h = self.row_curvature(w)?;
        let n = self.n_beamlets();
        match kind {
            PreconditionerKind::Jacobi => {
                let mut diag = self.gauss_newton_diagonal(&h);
                self.fluence_hessian(&mut |i, j, v| {
                    if i == j {
                        diag[i] += v;
                    }
                });
                let (median, floor) = median_floor(&diag);
                Preconditioner::diagonal(
                    diag.iter()
                        .map(|&d| 1.0 / if d > floor { d } else { median })
                        .collect(),
                )
            }
            PreconditionerKind::BeamBlocks => {
                let layout = self.influence.layout();
                let ranges: Vec<std::ops::Range<usize>> = (0..layout.n_beams())
                    .map(|b| layout.beam_range(b))
                    .filter(|r| !r.is_empty())
                    .collect();
                let mut blocks = self.gauss_newton_blocks(&h, &ranges);
                self.fluence_hessian(&mut |i, j, v| {
                    if let Some(k) = ranges.iter().position(|r| r.contains(&i) && r.contains(&j)) {
                        let r = &ranges[k];
                        blocks[k][(i - r.start) * r.len() + (j - r.start)] += v;
                    }
                });
                let diag: Vec<f64> = ranges
                    .iter()
                    .zip(&blocks)
                    .flat_map(|(r, m)| (0..r.len()).map(move |i| m[i * r.len() + i]))
                    .collect();
                let (median, floor) = median_floor(&diag);
                for (r, m) in ranges.iter().zip(blocks.iter_mut()) {
                    let len = r.len();
                    let mean = (0..len).map(|i| m[i * len + i]).sum::<f64>() / len as f64;
                    for i in 0..len {
                        let d = &mut m[i * len + i];
                        if *d <= floor {
                            *d = median;
                        }
                        *d += 1e-1 * mean.max(median);
                    }
                }
                Preconditioner::blocks(n, ranges.iter().map(|r| r.start).zip(blocks).collect())
            }
        }
    }

    /// The dense Gauss-Newton blocks `sum_i h_i D_i,R^T D_i,R` for the
    /// beamlet ranges `R`, in fixed row chunks summed in order.
    fn gauss_newton_blocks(&self, h: &[f64], ranges: &[std::ops::Range<usize>]) -> Vec<Vec<f64>> {
        const CHUNK: usize = 1 << 15;
        let rows = self.influence.n_rows();
        let zero = || -> Vec<Vec<f64>> {
            ranges
                .iter()
                .map(|r| vec![0.0; r.len() * r.len()])
                .collect()
        };
        let partials: Vec<Vec<Vec<f64>>> = (0..rows.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut acc = zero();
                for r in c * CHUNK..((c + 1) * CHUNK).min(rows) {
                    if h[r] == 0.0 {
                        continue;
                    }
                    let (cols, vals) = self.influence.row(r);
                    let mut e = 0;
                    for (k, range) in ranges.iter().enumerate() {
                        let first = e + cols[e..].partition_point(|&c| (c as usize) < range.start);
                        let last =
                            first + cols[first..].partition_point(|&c| (c as usize) < range.end);
                        e = last;
                        let len = range.len();
                        let m = &mut acc[k];
                        for a in first..last {
                            let ia = cols[a] as usize - range.start;
                            let va = h[r] * f64::from(vals[a]);
                            let row = &mut m[ia * len..ia * len + len];
                            for b in first..last {
                                row[cols[b] as usize - range.start] += va * f64::from(vals[b]);
                            }
                        }
                    }
                }
                acc
            })
            .collect();
        let mut total = zero();
        for p in partials {
            for (t, m) in total.iter_mut().zip(p) {
                for (a, b) in t.iter_mut().zip(m) {
                    *a += b;
                }
            }
        }
        total
    }

    /// `sum_i h_i D_ij^2` for every beamlet `j`, in fixed row chunks summed
    /// in order (deterministic for any thread count).
    pub(crate) fn gauss_newton_diagonal(&self, h: &[f64]) -> Vec<f64> {
        const CHUNK: usize = 1 << 16;
        let n = self.n_beamlets();
        let rows = self.influence.n_rows();
        let partials: Vec<Vec<f64>> = (0..rows.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0.0; n];
                for r in c * CHUNK..((c + 1) * CHUNK).min(rows) {
                    if h[r] == 0.0 {
                        continue;
                    }
                    let (cols, vals) = self.influence.row(r);
                    for (&j, &v) in cols.iter().zip(vals) {
                        let v = f64::from(v);
                        acc[j as usize] += h[r] * v * v;
                    }
                }
                acc
            })
            .collect();
        let mut diag = vec![0.0; n];
        for p in partials {
            for (d, v) in diag.iter_mut().zip(p) {
                *d += v;
            }
        }
        diag
    }

    /// Whether every objective is piecewise quadratic (and every fluence
    /// objective quadratic) and there is no constraint: then the exact solver
    /// applies. Returns the name of the first objective that is not.
    pub fn first_non_quadratic(&self) -> Option<String> {
        let mut probe = vec![0.0; self.influence.n_rows()];
        let dose = vec![0.0; self.influence.n_rows()];
        for t in &self.terms {
            if t.objective.add_curvature(&dose, 0.0, &mut probe)
                != CurvatureKind::PiecewiseQuadratic
            {
                return Some(t.objective.name().to_string());
            }
        }
        for t in &self.fluence_terms {
            if !t.objective.for_each_hessian_entry(0.0, &mut |_, _, _| {}) {
                return Some(t.objective.name().to_string());
            }
        }
        self.constraints.first().map(|c| c.name().to_string())
    }

    /// Row curvature and gradient of the dose objectives at `dose`
    /// (for the exact solver).
    #[cfg_attr(not(feature = "lapack"), allow(dead_code))]
    pub(crate) fn row_model(&self, dose: &[f64], h: &mut [f64], g: &mut [f64]) -> f64 {
        h.fill(0.0);
        g.fill(0.0);
        let mut total = 0.0;
        for t in &self.terms {
            t.objective.add_curvature(dose, t.weight, h);
            total += t.weight * t.objective.value_and_gradient(dose, t.weight, g);
        }
        total
    }

    /// Calls `add(i, j, v)` for the Hessian of the fluence terms.
    #[cfg_attr(not(feature = "lapack"), allow(dead_code))]
    pub(crate) fn fluence_hessian(&self, add: &mut dyn FnMut(usize, usize, f64)) {
        for t in &self.fluence_terms {
            t.objective.for_each_hessian_entry(t.weight, add);
        }
    }

    /// Value and gradient of the fluence terms alone (added into `grad`).
    #[cfg_attr(not(feature = "lapack"), allow(dead_code))]
    pub(crate) fn fluence_value_and_gradient(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        self.fluence_terms
            .iter()
            .map(|t| t.weight * t.objective.value_and_gradient(w, t.weight, grad))
            .sum()
    }
}

impl BoxProblem for FluenceProblem<'_> {
    fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    fn cost_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> Result<f64, argmin::core::Error> {
        Ok(self.value_and_gradient(x, grad)?)
    }

    fn line_prepare(&self, p: &[f64]) -> Result<bool, argmin::core::Error> {
        self.prepare_line(p)?;
        Ok(true)
    }

    fn line_value(&self, t: f64) -> Result<(f64, f64), argmin::core::Error> {
        Ok(FluenceProblem::line_value(self, t)?)
    }

    fn line_commit(
        &self,
        t: f64,
        x_out: &mut [f64],
        grad: &mut [f64],
    ) -> Result<f64, argmin::core::Error> {
        Ok(self.commit_line(t, x_out, grad)?)
    }
}

impl argmin::core::CostFunction for FluenceProblem<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, w: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        // With constraints the cost must include their terms: go through the
        // full evaluation then.
        if self.constraints.is_empty() {
            Ok(self.value(w)?)
        } else {
            let mut g = vec![0.0; w.len()];
            Ok(self.value_and_gradient(w, &mut g)?)
        }
    }
}

impl argmin::core::Gradient for FluenceProblem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, w: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        let mut g = vec![0.0; w.len()];
        self.value_and_gradient(w, &mut g)?;
        Ok(g)
    }
}
