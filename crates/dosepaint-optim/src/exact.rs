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

use ndarray::{Array1, Array2};
use ndarray_linalg::{FactorizeCInto, SolveC, UPLO};
use rayon::prelude::*;

use crate::problem::FluenceProblem;
use crate::solver::StopReason;
use crate::{Error, OptimizationResult, Result};

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
    let t0 = Instant::now();
    problem.ensure_ready()?;
    if let Some(name) = problem.first_non_quadratic() {
        return Err(Error::Unsupported(format!(
            "the exact solver needs piecewise-quadratic objectives and no constraint; \"{name}\" is not"
        )));
    }
    let d = problem.influence();
    let n = problem.n_beamlets();
    let mut x = match start {
        Some(w) => {
            problem.check_weights(w)?;
            w.to_vec()
        }
        None => problem.uniform_start()?,
    };
    let lower = problem.bounds().lower().to_vec();
    let upper = problem.bounds().upper().to_vec();
    let rows = d.n_rows();
    let mut dose = vec![0.0; rows];
    let mut h = vec![0.0; rows];
    let mut g_rows = vec![0.0; rows];
    let mut grad = vec![0.0; n];
    let mut b = vec![0.0; n];
    let mut history = Vec::new();
    let mut evaluations = 0u64;
    let mut previous_pattern: Option<Vec<bool>> = None;
    let mut stop = StopReason::MaxIterations;
    let mut outer = 0;
    let mut f = f64::INFINITY;
    problem.value_and_gradient(&x, &mut grad)?;
    let pg_start = problem.bounds().projected_gradient_norm(&x, &grad);
    while outer < settings.max_outer_iterations {
        outer += 1;
        d.dose_into(&x, &mut dose)?;
        f = problem.row_model(&dose, &mut h, &mut g_rows)
            + problem.fluence_value_and_gradient(&x, &mut vec![0.0; n]);
        evaluations += 1;
        if history.is_empty() {
            history.push(f);
        }
        let pattern: Vec<bool> = h.iter().map(|&v| v > 0.0).collect();
        // b = D^T (h d - g) + Q x - grad_fluence.
        let c: Vec<f64> = h
            .iter()
            .zip(&dose)
            .zip(&g_rows)
            .map(|((h, d), g)| h * d - g)
            .collect();
        d.transpose_product_into(&c, &mut b)?;
        let mut h_mat = gauss_newton_matrix(problem, &h);
        let mut qx = vec![0.0; n];
        let mut gf = vec![0.0; n];
        problem.fluence_value_and_gradient(&x, &mut gf);
        problem.fluence_hessian(&mut |i, j, v| {
            h_mat[i * n + j] += v;
            qx[i] += v * x[j];
        });
        for j in 0..n {
            b[j] += qx[j] - gf[j];
        }
        let z = box_qp(&h_mat, &b, &lower, &upper, &x, settings)?;
        // Armijo along the segment x -> z on the true objective.
        problem.value_and_gradient(&x, &mut grad)?;
        let slope: f64 = grad
            .iter()
            .zip(z.iter().zip(&x))
            .map(|(g, (z, x))| g * (z - x))
            .sum();
        let mut t = 1.0;
        let mut trial = vec![0.0; n];
        let mut accepted = false;
        for _ in 0..60 {
            for j in 0..n {
                trial[j] = (x[j] + t * (z[j] - x[j])).clamp(lower[j], upper[j]);
            }
            let ft = problem.value(&trial)?;
            evaluations += 1;
            if ft <= f + 1e-4 * t * slope.min(0.0) {
                accepted = ft < f || slope >= 0.0;
                if ft <= f {
                    x.clone_from(&trial);
                    f = ft;
                }
                break;
            }
            t *= 0.5;
        }
        history.push(f);
        let unchanged = previous_pattern.as_ref().is_some_and(|p| *p == pattern);
        if (unchanged && (t - 1.0).abs() < f64::EPSILON) || !accepted || slope >= 0.0 {
            stop = if accepted || slope >= 0.0 {
                StopReason::ProjectedGradient
            } else {
                StopReason::LineSearchFailed
            };
            // One more pass confirms the piece of the final point.
            d.dose_into(&x, &mut dose)?;
            problem.row_model(&dose, &mut h, &mut g_rows);
            let final_pattern: Vec<bool> = h.iter().map(|&v| v > 0.0).collect();
            if final_pattern == pattern || !accepted {
                break;
            }
            previous_pattern = Some(final_pattern);
            continue;
        }
        previous_pattern = Some(pattern);
    }
    problem.value_and_gradient(&x, &mut grad)?;
    let pg = problem.bounds().projected_gradient_norm(&x, &grad);
    // No decrease left at a projected gradient at round-off is convergence.
    if stop == StopReason::LineSearchFailed && pg <= 1e-9 * pg_start.max(f64::MIN_POSITIVE) {
        stop = StopReason::ProjectedGradient;
    }
    Ok(OptimizationResult {
        objective: problem.value(&x)?,
        objectives: problem.objective_values(&x)?,
        constraints: Vec::new(),
        weights: x,
        history,
        iterations: u64::from(outer),
        evaluations,
        rounds: 1,
        time_s: t0.elapsed().as_secs_f64(),
        stop_reason: if f.is_finite() {
            stop
        } else {
            StopReason::Other("non-finite objective".into())
        },
        projected_gradient_norm: pg,
        solver: "exact piecewise-quadratic (projected Newton, LAPACK Cholesky)".into(),
    })
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

/// `min z^T H z / 2 - b^T z` over `l <= z <= u` by projected Newton steps.
fn box_qp(
    h: &[f64],
    b: &[f64],
    l: &[f64],
    u: &[f64],
    start: &[f64],
    s: &ExactSettings,
) -> Result<Vec<f64>> {
    let n = b.len();
    let mean_diag = (0..n).map(|j| h[j * n + j]).sum::<f64>() / n as f64;
    // Damping of the Newton system (not of the model: the fixed point is
    // the exact minimizer); it bounds steps along near-null directions.
    let ridge = 1e-8 * mean_diag.max(f64::MIN_POSITIVE);
    let diag_of = |j: usize| {
        let v = h[j * n + j];
        if v > ridge { v } else { mean_diag.max(1.0) }
    };
    let mut z: Vec<f64> = start
        .iter()
        .zip(l.iter().zip(u))
        .map(|(x, (l, u))| x.clamp(*l, *u))
        .collect();
    let mut hz = vec![0.0; n];
    let mut g = vec![0.0; n];
    let model = |z: &[f64], hz: &mut [f64]| -> f64 {
        matvec(h, z, hz);
        z.iter()
            .zip(hz.iter())
            .zip(b)
            .map(|((z, hz), b)| 0.5 * z * hz - b * z)
            .sum()
    };
    let mut q = model(&z, &mut hz);
    let mut pg0 = None;
    let mut previous_free: Vec<usize> = Vec::new();
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
        let free: Vec<usize> = (0..n)
            .filter(|&j| {
                !((z[j] - l[j] <= eps && g[j] > 0.0) || (u[j] - z[j] <= eps && g[j] < 0.0))
            })
            .collect();
        let k = free.len();
        let mut d = vec![0.0; n];
        for j in 0..n {
            d[j] = -g[j] / diag_of(j);
        }
        if k > 0 {
            let mut sub = Array2::<f64>::zeros((k, k));
            for (a, &i) in free.iter().enumerate() {
                let row = &h[i * n..i * n + n];
                for (bb, &j) in free.iter().enumerate() {
                    sub[[a, bb]] = row[j];
                }
                sub[[a, a]] += ridge;
            }
            let rhs: Array1<f64> = free.iter().map(|&j| -g[j]).collect();
            let factor = sub.factorizec_into(UPLO::Lower).map_err(|e| lapack(&e))?;
            let sol = factor.solvec(&rhs).map_err(|e| lapack(&e))?;
            for (a, &j) in free.iter().enumerate() {
                d[j] = sol[a];
            }
        }
        // Armijo along the projection arc.
        let mut alpha = 1.0;
        let mut zt = vec![0.0; n];
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
            let qt = model(&zt, &mut hz);
            if qt <= q + 1e-4 * slope {
                z.clone_from(&zt);
                q = qt;
                improved = true;
                break;
            }
            alpha *= 0.5;
        }
        if !improved {
            matvec(h, &z, &mut hz);
            break;
        }
        // A full Newton step on an unchanged free set lands on the exact
        // minimizer of the program restricted to it.
        if (alpha - 1.0).abs() < f64::EPSILON && free == previous_free {
            break;
        }
        previous_free = free;
    }
    Ok(z)
}
