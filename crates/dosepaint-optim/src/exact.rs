//! The exact solver for plans whose objectives are all (piecewise)
//! quadratic, on LAPACK's Cholesky through `ndarray-linalg` (feature
//! `lapack`).
//!
//! Piecewise-quadratic objectives (squared deviation, under/overdose) make
//! `F(w)` a convex piecewise quadratic. On the current piece (the set of
//! rows whose curvature is active) `F` equals the quadratic model
//! `m(z) = z^T H z / 2 - b^T z + const` with `H = D^T diag(h) D + Q` (`h` the
//! row curvature, `Q` the Hessian of the fluence terms) and `b` chosen so that
//! `grad m(w) = grad F(w)`. Each outer iteration forms `H` and `b`, solves the
//! bound-constrained quadratic program exactly by projected Newton steps
//! (Bertsekas, SIAM J Control Optim 20:221, 1982) with a Cholesky
//! factorisation of the free block, and moves along the segment to its
//! solution with an Armijo search on the true `F`. When the row pieces stop
//! changing, the quadratic program's solution is the optimum of `F` (a
//! semismooth Newton method, finitely convergent in practice).
//!
//! The Newton systems are damped by `1e-8 mean(diag H)` on the diagonal: it
//! keeps singular blocks factorable (plans have more beamlets than the
//! target has voxels) and bounds steps along near-null directions, without
//! moving the fixed point (a zero projected gradient).

use std::time::Instant;

use ndarray::{ArrayViewMut1, ArrayViewMut2};
use ndarray_linalg::{FactorizeCInto, SolveC, UPLO};
use rayon::prelude::*;

use crate::problem::FluenceProblem;
use crate::solver::StopReason;
use crate::{Error, IterationInfo, OptimizationResult, Result};

/// Settings of [`solve_exact`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExactSettings {
    /// Most outer (piece-updating) iterations.
    pub max_outer_iterations: u32,
    /// Most projected-Newton steps per quadratic program.
    pub max_newton_steps: u32,
    /// Stop a quadratic program when `||P(z - grad m) - z||_inf` falls
    /// below this fraction of its first value (it also stops after a full
    /// Newton step on an unchanged free set, which is exact, or when the
    /// projected gradient stops shrinking at round-off).
    pub tolerance: f64,
}

impl Default for ExactSettings {
    fn default() -> Self {
        Self {
            max_outer_iterations: 60,
            max_newton_steps: 200,
            tolerance: 1e-10,
        }
    }
}

fn lapack(e: &ndarray_linalg::error::LinalgError) -> Error {
    Error::Solver(format!("LAPACK: {e}"))
}

/// Solves a plan of piecewise-quadratic objectives exactly (see the module
/// docs), starting from `start` (or the best uniform plan).
///
/// # Errors
/// A problem with a non-quadratic objective or with constraints
/// ([`Error::Unsupported`]), a start of the wrong length or outside the
/// bounds, or a LAPACK failure.
pub fn solve_exact(
    problem: &FluenceProblem<'_>,
    settings: &ExactSettings,
    start: Option<&[f64]>,
) -> Result<OptimizationResult> {
    solve_exact_with_progress(problem, settings, start, &mut |_| {})
}

/// [`solve_exact`] with a progress callback, called for the start point
/// (iteration 0) and after every outer iteration.
///
/// A good start shortens the piece search: a few hundred projected L-BFGS
/// iterations ([`crate::optimize`]) followed by this solver from their
/// weights is the fastest way to a converged plan (see
/// `docs/optimization.md`).
///
/// ```
/// use dosepaint_core::{BeamGrid, BeamletLayout, DoseInfluence, Grid, Structure, StructureRole, Volume};
/// use dosepaint_optim::{optimize, solve_exact_with_progress, DoseLimits, ExactSettings,
///     FluenceProblem, Settings, SquaredDeviation};
///
/// // Voxels 0-1 target (60 Gy), voxel 2 an organ (at most 20 Gy).
/// let grid = Grid::new([3, 1, 1], [2.0; 3], [0.0; 3])?;
/// let layout = BeamletLayout::full(
///     vec![BeamGrid { n_rows: 1, n_cols: 2, x0_mm: 0.0, y0_mm: 0.0 }], 5.0, 5.0)?;
/// let d = DoseInfluence::from_triplets(grid.clone(), vec![0, 1, 2], layout, vec![
///     (0, 0, 1.0), (1, 0, 0.5), (1, 1, 0.5), (2, 1, 1.0),
/// ])?;
/// let ptv = Structure::new("PTV", StructureRole::Target,
///     Volume::from_fn(grid.clone(), |[i, _, _]| i < 2))?;
/// let oar = Structure::new("OAR", StructureRole::OrganAtRisk,
///     Volume::from_fn(grid.clone(), |[i, _, _]| i == 2))?;
/// let mut problem = FluenceProblem::new(&d)?;
/// problem.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 60.0)?)?;
/// problem.add_objective(1.0, DoseLimits::overdose(&d, &oar, 20.0)?)?;
///
/// // A few quasi-Newton iterations, then the exact solver from there.
/// let first = optimize(&mut problem, &Settings { max_iterations: 3, ..Settings::default() }, &mut |_| {})?;
/// let mut objectives = Vec::new();
/// let exact = solve_exact_with_progress(&problem, &ExactSettings::default(), Some(&first.weights),
///     &mut |i| objectives.push(i.objective))?;
/// assert!(exact.stop_reason.is_converged());
/// assert!(exact.objective <= first.objective);
/// assert_eq!(objectives.len(), exact.history.len());
/// # Ok::<(), dosepaint_optim::Error>(())
/// ```
///
/// # Errors
/// As [`solve_exact`].
pub fn solve_exact_with_progress(
    problem: &FluenceProblem<'_>,
    settings: &ExactSettings,
    start: Option<&[f64]>,
    progress: &mut dyn FnMut(&IterationInfo<'_>),
) -> Result<OptimizationResult> {
    let t0 = Instant::now();
    problem.ensure_ready()?;
    if let Some(name) = problem.first_non_quadratic() {
        return Err(Error::Unsupported(format!(
            "the exact solver needs piecewise-quadratic objectives and no constraint; \"{name}\" is not"
        )));
    }
    let n = problem.n_beamlets();
    let mut x = match start {
        Some(w) => {
            problem.check_weights(w)?;
            w.to_vec()
        }
        None => problem.uniform_start()?,
    };
    let (lower, upper) = (problem.bounds().lower(), problem.bounds().upper());
    // Every buffer of the loop is allocated once, here.
    let mut rows = RowScratch::new(problem);
    let mut point = PiecewiseModel::new(problem);
    point.evaluate(problem, &x, &mut rows)?;
    // The point before the last step (its piece `h` is compared with the new one).
    let mut previous = PiecewiseModel::new(problem);
    let mut qp = BoxQp::new(n);
    let mut b = vec![0.0; n];
    let mut trial = vec![0.0; n];
    let mut evaluations = 1u64;
    let pg_start = point.projected_gradient_norm(problem, &x);
    let mut history = vec![point.f];
    let report = |iteration: u64,
                  point: &PiecewiseModel,
                  x: &[f64],
                  progress: &mut dyn FnMut(&IterationInfo<'_>)| {
        progress(&IterationInfo {
            iteration,
            max_iterations: u64::from(settings.max_outer_iterations),
            round: 0,
            objective: point.f,
            projected_gradient_norm: point.projected_gradient_norm(problem, x),
            elapsed_s: t0.elapsed().as_secs_f64(),
            weights: x,
        });
    };
    report(0, &point, &x, progress);
    let mut hessian = GaussNewton::new(problem, &point.h);
    let mut stop = StopReason::MaxIterations;
    let mut outer = 0;
    while outer < settings.max_outer_iterations {
        outer += 1;
        // The model m(z) = z^T H z / 2 - b^T z with grad m(x) = grad F(x).
        matvec(&hessian.matrix, &x, &mut b);
        for (b, g) in b.iter_mut().zip(&point.grad) {
            *b -= g;
        }
        let z = qp.solve(&hessian.matrix, &b, lower, upper, &x, settings)?;
        // Armijo along the segment x -> z on the true objective.
        let slope: f64 = point
            .grad
            .iter()
            .zip(z.iter().zip(&x))
            .map(|(g, (z, x))| g * (z - x))
            .sum();
        let mut t = 1.0;
        let mut accepted = false;
        if slope < 0.0 {
            for _ in 0..60 {
                for j in 0..n {
                    trial[j] = (x[j] + t * (z[j] - x[j])).clamp(lower[j], upper[j]);
                }
                let ft = problem.value(&trial)?;
                evaluations += 1;
                if ft <= point.f + 1e-4 * t * slope {
                    accepted = ft < point.f;
                    break;
                }
                t *= 0.5;
            }
        }
        if !accepted {
            // No descent left along the exact model's step: converged to
            // round-off (judged below by the projected gradient).
            stop = StopReason::LineSearchFailed;
            break;
        }
        // `trial` is rewritten in full before its next use.
        std::mem::swap(&mut x, &mut trial);
        std::mem::swap(&mut point, &mut previous);
        point.evaluate(problem, &x, &mut rows)?;
        evaluations += 1;
        history.push(point.f);
        report(u64::from(outer), &point, &x, progress);
        // A full step to the minimizer of an unchanged piece that stays on
        // that piece is the minimizer of F.
        let unchanged = previous.h == point.h;
        if unchanged && (t - 1.0).abs() < f64::EPSILON {
            stop = StopReason::ProjectedGradient;
            break;
        }
        hessian.update(problem, &previous.h, &point.h);
    }
    let pg = point.projected_gradient_norm(problem, &x);
    // No decrease left at a projected gradient at round-off is convergence.
    if stop == StopReason::LineSearchFailed && pg <= 1e-9 * pg_start.max(f64::MIN_POSITIVE) {
        stop = StopReason::ProjectedGradient;
    }
    Ok(OptimizationResult {
        objective: point.f,
        objectives: problem.objective_values(&x)?,
        constraints: Vec::new(),
        weights: x,
        history,
        iterations: u64::from(outer),
        evaluations,
        rounds: 1,
        time_s: t0.elapsed().as_secs_f64(),
        stop_reason: if point.f.is_finite() {
            stop
        } else {
            StopReason::Other("non-finite objective".into())
        },
        projected_gradient_norm: pg,
        solver: "exact piecewise-quadratic (projected Newton, LAPACK Cholesky)".into(),
    })
}

/// The objective at a point with its piece: value, gradient and the row
/// curvature `h` that selects the piece.
struct PiecewiseModel {
    f: f64,
    grad: Vec<f64>,
    h: Vec<f64>,
}

/// Row-sized scratch of an evaluation: `D x` and the row gradient.
struct RowScratch {
    dose: Vec<f64>,
    g_rows: Vec<f64>,
}

impl RowScratch {
    fn new(problem: &FluenceProblem<'_>) -> Self {
        let rows = problem.influence().n_rows();
        Self {
            dose: vec![0.0; rows],
            g_rows: vec![0.0; rows],
        }
    }
}

impl PiecewiseModel {
    /// Buffers for `problem`, not yet evaluated (`f` is NaN).
    fn new(problem: &FluenceProblem<'_>) -> Self {
        Self {
            f: f64::NAN,
            grad: vec![0.0; problem.n_beamlets()],
            h: vec![0.0; problem.influence().n_rows()],
        }
    }

    /// Evaluates at `x` in place: one `D x` and one `D^T g`, no allocation.
    fn evaluate(
        &mut self,
        problem: &FluenceProblem<'_>,
        x: &[f64],
        scratch: &mut RowScratch,
    ) -> Result<()> {
        let d = problem.influence();
        let RowScratch { dose, g_rows } = scratch;
        d.dose_into(x, dose)?;
        let row_f = problem.row_model(dose, &mut self.h, g_rows);
        d.transpose_product_into(g_rows, &mut self.grad)?;
        let fluence_f = problem.fluence_value_and_gradient(x, &mut self.grad);
        self.f = row_f + fluence_f;
        Ok(())
    }

    fn projected_gradient_norm(&self, problem: &FluenceProblem<'_>, x: &[f64]) -> f64 {
        problem.bounds().projected_gradient_norm(x, &self.grad)
    }
}

/// The dense Hessian `H = D^T diag(h) D + Q` of the current piece, kept up to
/// date between pieces by adding only the rows whose curvature changed
/// (forming `H` from scratch is the solver's most expensive step, and
/// consecutive pieces differ in a few hundred rows).
struct GaussNewton {
    matrix: Vec<f64>,
    /// Row updates since the last full build, in rows.
    updated_rows: usize,
}

impl GaussNewton {
    fn new(problem: &FluenceProblem<'_>, h: &[f64]) -> Self {
        let n = problem.n_beamlets();
        let mut matrix = gauss_newton_matrix(problem, h);
        problem.fluence_hessian(&mut |i, j, v| matrix[i * n + j] += v);
        Self {
            matrix,
            updated_rows: 0,
        }
    }

    /// Moves `H` from the piece `old` to the piece `new`: rank-one row
    /// updates while few rows changed (bounded in total, so round-off
    /// cannot accumulate), a fresh build otherwise.
    fn update(&mut self, problem: &FluenceProblem<'_>, old: &[f64], new: &[f64]) {
        // Exact comparison: a row's curvature is a constant of its piece.
        let changed: Vec<usize> = (0..new.len())
            .filter(|&r| old[r].to_bits() != new[r].to_bits())
            .collect();
        let active = new.iter().filter(|&&v| v > 0.0).count();
        if self.updated_rows + changed.len() > active / 2 {
            *self = Self::new(problem, new);
            return;
        }
        self.updated_rows += changed.len();
        let d = problem.influence();
        let n = problem.n_beamlets();
        for r in changed {
            let dh = new[r] - old[r];
            let (cols, vals) = d.row(r);
            for (a, &ca) in cols.iter().enumerate() {
                let va = dh * f64::from(vals[a]);
                for (&cb, &vb) in cols[a..].iter().zip(&vals[a..]) {
                    let v = va * f64::from(vb);
                    self.matrix[ca as usize * n + cb as usize] += v;
                    if cb != ca {
                        self.matrix[cb as usize * n + ca as usize] += v;
                    }
                }
            }
        }
    }
}

/// `D^T diag(h) D`, dense row-major `n x n`, over the rows with `h > 0`, in
/// fixed row chunks summed in order.
fn gauss_newton_matrix(problem: &FluenceProblem<'_>, h: &[f64]) -> Vec<f64> {
    const CHUNK: usize = 1 << 16;
    let d = problem.influence();
    let n = problem.n_beamlets();
    let rows = d.n_rows();
    let chunks = rows.div_ceil(CHUNK);
    let threads = rayon::current_num_threads().max(1);
    // One accumulator per group of consecutive chunks (bounded memory).
    let groups = threads.min(chunks.max(1));
    let per = chunks.div_ceil(groups).max(1);
    let partials: Vec<Vec<f64>> = (0..groups)
        .into_par_iter()
        .map(|gi| {
            let mut acc = vec![0.0; n * n];
            for c in gi * per..((gi + 1) * per).min(chunks) {
                for r in c * CHUNK..((c + 1) * CHUNK).min(rows) {
                    if h[r] <= 0.0 {
                        continue;
                    }
                    // Upper triangle only (columns ascending); mirrored below.
                    let (cols, vals) = d.row(r);
                    for (a, &ca) in cols.iter().enumerate() {
                        let va = h[r] * f64::from(vals[a]);
                        let row = &mut acc[ca as usize * n..ca as usize * n + n];
                        for (&cb, &vb) in cols[a..].iter().zip(&vals[a..]) {
                            row[cb as usize] += va * f64::from(vb);
                        }
                    }
                }
            }
            acc
        })
        .collect();
    let mut out = vec![0.0; n * n];
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    for i in 0..n {
        for j in 0..i {
            out[i * n + j] = out[j * n + i];
        }
    }
    out
}

/// `y = H z` (row-major dense).
fn matvec(h: &[f64], z: &[f64], y: &mut [f64]) {
    let n = z.len();
    y.par_iter_mut().enumerate().for_each(|(i, yi)| {
        *yi = h[i * n..i * n + n].iter().zip(z).map(|(a, b)| a * b).sum();
    });
}

/// The projected-Newton solver of `min z^T H z / 2 - b^T z` over
/// `l <= z <= u`, with every buffer it needs (allocated once per solve of
/// [`solve_exact`], reused by every outer iteration and Newton step).
struct BoxQp {
    z: Vec<f64>,
    hz: Vec<f64>,
    g: Vec<f64>,
    /// The Newton direction and the trial point of the Armijo search.
    d: Vec<f64>,
    zt: Vec<f64>,
    /// The free variables of this step and of the previous one.
    free: Vec<usize>,
    previous_free: Vec<usize>,
    /// The free block of `H` (`k x k`, row-major, factorized in place) and
    /// the right-hand side, overwritten by the solution.
    block: Vec<f64>,
    rhs: Vec<f64>,
}

impl BoxQp {
    fn new(n: usize) -> Self {
        Self {
            z: vec![0.0; n],
            hz: vec![0.0; n],
            g: vec![0.0; n],
            d: vec![0.0; n],
            zt: vec![0.0; n],
            free: Vec::with_capacity(n),
            previous_free: Vec::with_capacity(n),
            block: Vec::new(),
            rhs: Vec::with_capacity(n),
        }
    }

    /// The minimizer from `start` (projected into the box).
    fn solve(
        &mut self,
        h: &[f64],
        b: &[f64],
        l: &[f64],
        u: &[f64],
        start: &[f64],
        s: &ExactSettings,
    ) -> Result<&[f64]> {
        let n = b.len();
        let mean_diag = (0..n).map(|j| h[j * n + j]).sum::<f64>() / n as f64;
        // Damping of the Newton system (not of the model: the fixed point is
        // the exact minimizer); it bounds steps along near-null directions.
        let ridge = 1e-8 * mean_diag.max(f64::MIN_POSITIVE);
        let diag_of = |j: usize| {
            let v = h[j * n + j];
            if v > ridge { v } else { mean_diag.max(1.0) }
        };
        let Self {
            z,
            hz,
            g,
            d,
            zt,
            free,
            previous_free,
            block,
            rhs,
        } = self;
        for (z, (x, (l, u))) in z.iter_mut().zip(start.iter().zip(l.iter().zip(u))) {
            *z = x.clamp(*l, *u);
        }
        let model = |z: &[f64], hz: &mut [f64]| -> f64 {
            matvec(h, z, hz);
            z.iter()
                .zip(hz.iter())
                .zip(b)
                .map(|((z, hz), b)| 0.5 * z * hz - b * z)
                .sum()
        };
        let mut q = model(z, hz);
        let mut pg0 = None;
        previous_free.clear();
        let mut previous_pg = f64::INFINITY;
        let mut stalled = 0;
        for _ in 0..s.max_newton_steps {
            for j in 0..n {
                g[j] = hz[j] - b[j];
            }
            let mut pg = 0.0f64;
            for j in 0..n {
                pg = pg.max(((z[j] - g[j]).clamp(l[j], u[j]) - z[j]).abs());
            }
            let pg0 = *pg0.get_or_insert(pg);
            if pg <= s.tolerance * pg0 || pg == 0.0 {
                break;
            }
            // Round-off floor: the projected gradient stopped shrinking.
            stalled = if pg >= 0.5 * previous_pg {
                stalled + 1
            } else {
                0
            };
            if stalled >= 5 {
                break;
            }
            previous_pg = pg;
            let eps = pg.min(1e-6 * z.iter().fold(1.0f64, |m, v| m.max(v.abs())));
            free.clear();
            free.extend((0..n).filter(|&j| {
                !((z[j] - l[j] <= eps && g[j] > 0.0) || (u[j] - z[j] <= eps && g[j] < 0.0))
            }));
            let k = free.len();
            for j in 0..n {
                d[j] = -g[j] / diag_of(j);
            }
            if k > 0 {
                block.resize(k * k, 0.0);
                for (a, &i) in free.iter().enumerate() {
                    let row = &h[i * n..i * n + n];
                    let out = &mut block[a * k..a * k + k];
                    for (o, &j) in out.iter_mut().zip(free.iter()) {
                        *o = row[j];
                    }
                    out[a] += ridge;
                }
                rhs.clear();
                rhs.extend(free.iter().map(|&j| -g[j]));
                let sub = ArrayViewMut2::from_shape((k, k), &mut block[..k * k])
                    .map_err(|e| Error::Solver(format!("free block of the Newton system: {e}")))?;
                let factor = sub.factorizec_into(UPLO::Lower).map_err(|e| lapack(&e))?;
                factor
                    .solvec_inplace(&mut ArrayViewMut1::from(&mut rhs[..]))
                    .map_err(|e| lapack(&e))?;
                for (&j, &v) in free.iter().zip(rhs.iter()) {
                    d[j] = v;
                }
            }
            // Armijo along the projection arc.
            let mut alpha = 1.0;
            let mut improved = false;
            for _ in 0..50 {
                for j in 0..n {
                    zt[j] = (z[j] + alpha * d[j]).clamp(l[j], u[j]);
                }
                let slope: f64 = (0..n).map(|j| g[j] * (zt[j] - z[j])).sum();
                if slope >= 0.0 {
                    alpha *= 0.5;
                    continue;
                }
                let qt = model(zt, hz);
                if qt <= q + 1e-4 * slope {
                    // `zt` is rewritten in full before its next use.
                    std::mem::swap(z, zt);
                    q = qt;
                    improved = true;
                    break;
                }
                alpha *= 0.5;
            }
            if !improved {
                matvec(h, z, hz);
                break;
            }
            // A full Newton step on an unchanged free set lands on the exact
            // minimizer of the program restricted to it.
            if (alpha - 1.0).abs() < f64::EPSILON && free == previous_free {
                break;
            }
            std::mem::swap(free, previous_free);
        }
        Ok(&self.z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FluenceSmoothness, SquaredDeviation};
    use dosepaint_core::{BeamGrid, BeamletLayout, DoseInfluence, Grid};

    /// The incrementally updated Hessian equals a fresh build of the new
    /// piece, also when the updates cross the rebuild threshold.
    #[test]
    fn gauss_newton_updates_match_a_fresh_build() {
        let grid = Grid::new([16, 1, 1], [2.0; 3], [0.0; 3]).unwrap();
        let layout = BeamletLayout::full(
            vec![BeamGrid {
                n_rows: 2,
                n_cols: 3,
                x0_mm: 0.0,
                y0_mm: 0.0,
            }],
            5.0,
            5.0,
        )
        .unwrap();
        let t: Vec<(u32, u32, f32)> = (0..16u32)
            .flat_map(|r| (0..6u32).map(move |c| (r, c, ((r * 7 + c * 3) % 5) as f32 + 0.5)))
            .collect();
        let d = DoseInfluence::from_triplets(grid, (0..16).collect(), layout, t).unwrap();
        let mut p = FluenceProblem::new(&d).unwrap();
        let rows: Vec<u32> = (0..16).collect();
        p.add_objective(
            1.0,
            SquaredDeviation::from_rows("all", rows, vec![1.0; 16], crate::Deviation::Absolute)
                .unwrap(),
        )
        .unwrap();
        p.add_fluence_objective(0.5, FluenceSmoothness::new(d.layout()).unwrap())
            .unwrap();
        let pieces: [Vec<f64>; 4] = [
            (0..16)
                .map(|r| if r % 3 == 0 { 0.0 } else { 1.0 })
                .collect(),
            (0..16)
                .map(|r| if r % 3 == 0 { 2.0 } else { 1.0 })
                .collect(),
            (0..16).map(|r| if r < 2 { 0.0 } else { 1.0 }).collect(),
            (0..16)
                .map(|r| if r % 2 == 0 { 0.5 } else { 0.0 })
                .collect(),
        ];
        let mut h = GaussNewton::new(&p, &pieces[0]);
        for w in pieces.windows(2) {
            h.update(&p, &w[0], &w[1]);
            let fresh = GaussNewton::new(&p, &w[1]);
            for (a, b) in h.matrix.iter().zip(&fresh.matrix) {
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
}
