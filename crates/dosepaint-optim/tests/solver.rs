//! The solvers: non-negative least squares with known solutions, KKT
//! conditions at the returned optimum, invariance to the order of the
//! objectives, determinism, constraints, argmin interoperability and error
//! handling.

mod common;

use argmin::core::{Executor, Solver, State as _};
use dosepaint_core::{DoseInfluence, Structure, StructureRole, Volume};
use dosepaint_optim::{
    BoxProblem, Constraint, Deviation, DoseLimits, Error, FluenceProblem, FluenceSmoothness,
    OptimizationResult, PreconditionerKind, ProjectedGradient, ProjectedLbfgs, Sense, Settings,
    SolverKind, SquaredDeviation, StartPoint, State, StopReason, Tolerances, optimize,
};
use proptest::prelude::*;

/// A matrix with rows `rows x cols` of the given entries, every row a voxel
/// of a `rows x 1 x 1` grid, and a structure over all rows.
fn matrix(rows: usize, cols: usize, entries: &[(u32, u32, f32)]) -> (DoseInfluence, Structure) {
    let d = common::line_influence(rows, [1, cols], entries.iter().copied());
    let all = Structure::new(
        "All",
        StructureRole::Target,
        Volume::filled(d.grid().clone(), true),
    )
    .unwrap();
    (d, all)
}

/// Runs [`optimize`] without a progress callback.
fn solve(p: &mut FluenceProblem<'_>, settings: &Settings) -> OptimizationResult {
    optimize(p, settings, &mut |_| {}).unwrap()
}

/// 60 Gy to the PTV and an overdose limit on the organ, both weight 1.
fn target_and_organ_problem<'a>(
    d: &'a DoseInfluence,
    ptv: &Structure,
    oar: &Structure,
    organ_limit_gy: f64,
) -> FluenceProblem<'a> {
    let mut p = FluenceProblem::new(d).unwrap();
    p.add_objective(1.0, SquaredDeviation::uniform(d, ptv, 60.0).unwrap())
        .unwrap();
    p.add_objective(1.0, DoseLimits::overdose(d, oar, organ_limit_gy).unwrap())
        .unwrap();
    p
}

fn tight() -> Settings {
    Settings {
        max_iterations: 2000,
        tolerances: Tolerances {
            projected_gradient_relative: 1e-12,
            projected_gradient_absolute: 1e-13,
            relative_objective_change: 0.0,
            patience: 3,
        },
        ..Settings::default()
    }
}

#[test]
fn nnls_toy_with_an_active_bound() {
    // d0 = w0, d1 = w1, d2 = w0 + w1 with targets (2, 0, 0):
    // unconstrained least squares gives w = (4/3, -2/3); with w >= 0 the
    // optimum is w = (1, 0) (KKT: dF/dw1 = 2 (w0 + w1) > 0 there).
    let (d, all) = matrix(3, 2, &[(0, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0), (2, 1, 1.0)]);
    let o = SquaredDeviation::from_rows(
        "ls",
        d.rows_in_mask(all.mask()).unwrap(),
        vec![2.0, 0.0, 0.0],
        Deviation::Absolute,
    )
    .unwrap();
    for (solver, segment) in [
        (SolverKind::ProjectedLbfgs, true),
        (SolverKind::ProjectedLbfgs, false),
        (SolverKind::ProjectedGradient, true),
    ] {
        for pre in [
            None,
            Some(PreconditionerKind::Jacobi),
            Some(PreconditionerKind::BeamBlocks),
        ] {
            let mut p = FluenceProblem::new(&d).unwrap();
            p.add_objective(1.0, o.clone()).unwrap();
            let settings = Settings {
                solver,
                preconditioner: pre,
                segment_search: segment,
                ..tight()
            };
            let r = solve(&mut p, &settings);
            assert!(
                (r.weights[0] - 1.0).abs() < 1e-8,
                "{solver:?} {pre:?}: {:?}",
                r.weights
            );
            assert!(
                r.weights[1].abs() < 1e-12,
                "{solver:?} {pre:?}: {:?}",
                r.weights
            );
            // F = ((1 - 2)^2 + 0 + 1) / 3.
            assert!((r.objective - 2.0 / 3.0).abs() < 1e-12);
        }
    }
}

#[test]
fn upper_bounds_are_respected() {
    // One beamlet, target 10 Gy at 1 Gy per unit weight; w <= 4 binds.
    let (d, all) = matrix(1, 1, &[(0, 0, 1.0)]);
    let mut p = FluenceProblem::new(&d).unwrap();
    p.add_objective(1.0, SquaredDeviation::uniform(&d, &all, 10.0).unwrap())
        .unwrap();
    p.set_upper_bound(4.0).unwrap();
    let r = solve(&mut p, &tight());
    assert!((r.weights[0] - 4.0).abs() < 1e-12);
    assert!(p.set_upper_bound(-1.0).is_err());
}

/// The exact NNLS solution of `min ||A w - b||^2, w >= 0` by enumerating
/// every active set (tiny problems only): an independent reference.
fn brute_force_nnls(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = a[0].len();
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 0u32..(1 << n) {
        let free: Vec<usize> = (0..n).filter(|j| mask & (1 << j) != 0).collect();
        let k = free.len();
        // Normal equations on the free set, by Gaussian elimination.
        let mut m = vec![vec![0.0; k + 1]; k];
        for (r, &i) in free.iter().enumerate() {
            for (c, &j) in free.iter().enumerate() {
                m[r][c] = a.iter().map(|row| row[i] * row[j]).sum();
            }
            m[r][k] = a.iter().zip(b).map(|(row, bb)| row[i] * bb).sum();
        }
        let mut ok = true;
        for c in 0..k {
            let piv = (c..k)
                .max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs()))
                .unwrap();
            m.swap(c, piv);
            if m[c][c].abs() < 1e-12 {
                ok = false;
                break;
            }
            for r in 0..k {
                if r != c {
                    let f = m[r][c] / m[c][c];
                    for cc in c..=k {
                        m[r][cc] -= f * m[c][cc];
                    }
                }
            }
        }
        if !ok {
            continue;
        }
        let mut w = vec![0.0; n];
        for (r, &i) in free.iter().enumerate() {
            w[i] = m[r][k] / m[r][r];
        }
        if w.iter().any(|&v| v < 0.0) {
            continue;
        }
        let f: f64 = a
            .iter()
            .zip(b)
            .map(|(row, bb)| (row.iter().zip(&w).map(|(x, y)| x * y).sum::<f64>() - bb).powi(2))
            .sum();
        if best.as_ref().is_none_or(|(bf, _)| f < *bf) {
            best = Some((f, w));
        }
    }
    best.unwrap().1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random NNLS problems: the optimum matches the enumerated solution and
    /// satisfies the KKT conditions (projected gradient below tolerance).
    #[test]
    fn random_nnls_matches_enumeration_and_kkt(
        e in prop::collection::vec(0.0f32..1.0, 8 * 4),
        b in prop::collection::vec(0.0f64..60.0, 8),
    ) {
        let entries: Vec<(u32, u32, f32)> =
            (0..8u32).flat_map(|r| (0..4u32).map(move |c| (r, c))).map(|(r, c)| (r, c, e[(r * 4 + c) as usize])).collect();
        let (d, all) = matrix(8, 4, &entries);
        let rows = d.rows_in_mask(all.mask()).unwrap();
        let mut p = FluenceProblem::new(&d).unwrap();
        p.add_objective(1.0, SquaredDeviation::from_rows("ls", rows, b.clone(), Deviation::Absolute).unwrap()).unwrap();
        let r = solve(&mut p, &tight());
        let a: Vec<Vec<f64>> = (0..8).map(|r| (0..4).map(|c| f64::from(e[r * 4 + c])).collect()).collect();
        let w_ref = brute_force_nnls(&a, &b);
        let f_ref: f64 = a.iter().zip(&b).map(|(row, bb)| (row.iter().zip(&w_ref).map(|(x, y)| x * y).sum::<f64>() - bb).powi(2)).sum::<f64>() / 8.0;
        // Objective to 1e-9 relative (the weights themselves may be
        // ill-determined when columns are nearly parallel).
        prop_assert!((r.objective - f_ref).abs() <= 1e-9 * f_ref.max(1.0), "{} vs {f_ref}", r.objective);
        // KKT: ||P(w - g) - w||_inf small relative to its value at the start
        // (the objective, ~1e2, resolves changes of ~1e-14 relative, so a
        // projected gradient of ~1e-7 of the start is at round-off).
        let mut g = vec![0.0; 4];
        let w0 = p.uniform_start().unwrap();
        p.value_and_gradient(&w0, &mut g).unwrap();
        let scale = p.bounds().projected_gradient_norm(&w0, &g).max(1.0);
        p.value_and_gradient(&r.weights, &mut g).unwrap();
        let pgn = p.bounds().projected_gradient_norm(&r.weights, &g);
        prop_assert!(pgn <= 1e-6 * scale, "pg {pgn}, g {g:?}, w {:?}, {:?} after {} it", r.weights, r.stop_reason, r.iterations);
        prop_assert!(r.weights.iter().all(|&w| w >= 0.0));
    }
}

fn plan() -> (DoseInfluence, Structure, Structure) {
    // 12 voxels, 6 beamlets in a 2 x 3 beam grid; a deterministic pseudo-random matrix.
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / f64::from(1u32 << 31)) as f32
    };
    let mut t = Vec::new();
    for r in 0..12u32 {
        for c in 0..6u32 {
            let v = next();
            if v > 0.3 {
                t.push((r, c, v));
            }
        }
    }
    let d = common::line_influence(12, [2, 3], t);
    let (ptv, oar) = common::target_and_organ(&d, 7);
    (d, ptv, oar)
}

#[test]
fn result_does_not_depend_on_objective_order() {
    let (d, ptv, oar) = plan();
    let a = SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap();
    let b = DoseLimits::overdose(&d, &oar, 15.0).unwrap();
    let c = DoseLimits::underdose(&d, &ptv, 57.0).unwrap();
    let mut p1 = FluenceProblem::new(&d).unwrap();
    p1.add_objective(1.0, a.clone())
        .unwrap()
        .add_objective(2.0, b.clone())
        .unwrap()
        .add_objective(0.5, c.clone())
        .unwrap();
    let mut p2 = FluenceProblem::new(&d).unwrap();
    p2.add_objective(0.5, c)
        .unwrap()
        .add_objective(2.0, b)
        .unwrap()
        .add_objective(1.0, a)
        .unwrap();
    let r1 = solve(&mut p1, &tight());
    let r2 = solve(&mut p2, &tight());
    assert!((r1.objective - r2.objective).abs() <= 1e-10 * r1.objective);
    for (x, y) in r1.weights.iter().zip(&r2.weights) {
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
            "{:?} vs {:?}",
            r1.weights,
            r2.weights
        );
    }
}

#[test]
fn results_are_deterministic_and_report_progress() {
    let (d, ptv, oar) = plan();
    let run = || {
        let mut p = target_and_organ_problem(&d, &ptv, &oar, 15.0);
        p.add_fluence_objective(0.01, FluenceSmoothness::new(d.layout()).unwrap())
            .unwrap();
        let mut seen = Vec::new();
        let r = optimize(&mut p, &Settings::default(), &mut |i| {
            seen.push((i.iteration, i.objective));
        })
        .unwrap();
        (r, seen)
    };
    let (r1, seen) = run();
    let (r2, _) = run();
    assert_eq!(r1.weights, r2.weights);
    assert_eq!(r1.history, r2.history);
    // One callback per iteration, counting up, objective non-increasing.
    assert_eq!(seen.len() as u64, r1.iterations);
    assert!(
        seen.windows(2)
            .all(|w| w[1].0 == w[0].0 + 1 && w[1].1 <= w[0].1)
    );
    assert_eq!(r1.history.len() as u64, r1.iterations + 1);
    assert_eq!(r1.objectives.len(), 3);
    let total: f64 = r1.objectives.iter().map(|o| o.weight * o.value).sum();
    assert!((total - r1.objective).abs() <= 1e-12 * r1.objective.max(1.0));
    assert!(r1.stop_reason.is_converged(), "{:?}", r1.stop_reason);
}

#[test]
fn iteration_and_time_limits_stop_the_run() {
    let (d, ptv, oar) = plan();
    let mut p = target_and_organ_problem(&d, &ptv, &oar, 5.0);
    let s = Settings {
        max_iterations: 3,
        ..tight()
    };
    let r = solve(&mut p, &s);
    assert_eq!(r.iterations, 3);
    assert_eq!(r.stop_reason, StopReason::MaxIterations);
    let s = Settings {
        time_limit_s: Some(1e-9),
        max_iterations: 1_000_000,
        ..tight()
    };
    let r = solve(&mut p, &s);
    assert_eq!(r.stop_reason, StopReason::TimeLimit);
}

#[test]
fn constraints_are_enforced_and_reported() {
    let (d, ptv, oar) = plan();
    let mut p = FluenceProblem::new(&d).unwrap();
    p.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap())
        .unwrap();
    // Without the constraint the organ gets far more than 20 Gy.
    let free = solve(&mut p, &Settings::default());
    let dose = d.dose(&free.weights).unwrap();
    let organ_max = d
        .rows_in_mask(oar.mask())
        .unwrap()
        .iter()
        .map(|&r| dose[r as usize])
        .fold(0.0, f64::max);
    assert!(
        organ_max > 25.0,
        "the test needs a binding constraint ({organ_max})"
    );
    p.add_constraint(Constraint::max_dose(&d, &oar, 20.0).unwrap())
        .unwrap();
    let r = solve(
        &mut p,
        &Settings {
            max_iterations: 5000,
            ..Settings::default()
        },
    );
    assert_eq!(r.constraints.len(), 1);
    assert!(r.constraints_met(), "{:#?}", r.constraints);
    assert!(
        r.constraints[0].value <= 20.0 + 0.2,
        "{:?}",
        r.constraints[0]
    );
    assert!(r.rounds > 1);
    // A DVH constraint that the objective alone would violate: the PTV is
    // pulled to 30 Gy, but its D50 must reach 40 Gy.
    let mut q = FluenceProblem::new(&d).unwrap();
    q.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 30.0).unwrap())
        .unwrap();
    q.add_constraint(Constraint::dose_at_volume(&d, &ptv, 0.5, Sense::AtLeast, 40.0).unwrap())
        .unwrap();
    let r = solve(
        &mut q,
        &Settings {
            max_iterations: 5000,
            ..Settings::default()
        },
    );
    assert!(r.constraints_met(), "{:#?}", r.constraints);
    assert!(r.constraints[0].value >= 40.0 - 0.4);
    // A contradictory pair cannot both be met, and the report says so.
    let mut q = FluenceProblem::new(&d).unwrap();
    q.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap())
        .unwrap();
    q.add_constraint(Constraint::max_dose(&d, &ptv, 30.0).unwrap())
        .unwrap();
    q.add_constraint(Constraint::min_dose(&d, &ptv, 40.0).unwrap())
        .unwrap();
    let r = solve(
        &mut q,
        &Settings {
            max_outer_iterations: 4,
            ..Settings::default()
        },
    );
    assert!(!r.constraints_met());
}

/// Runs `solver` on `problem` under argmin's executor from `start`; returns
/// the final state.
fn run_executor<P, S: Solver<P, State>>(
    problem: P,
    solver: S,
    start: &[f64],
    max_iters: u64,
) -> State {
    Executor::new(problem, solver)
        .configure(|s| s.param(start.to_vec()).max_iters(max_iters))
        .run()
        .unwrap()
        .state()
        .clone()
}

#[test]
fn solvers_run_under_argmin_executor() {
    let (d, ptv, oar) = plan();
    let p = target_and_organ_problem(&d, &ptv, &oar, 15.0);
    let w0 = p.uniform_start().unwrap();
    let f1 = run_executor(&p, ProjectedLbfgs::new(), &w0, 500).get_best_cost();
    let f2 = run_executor(&p, ProjectedGradient::new(), &w0, 20000).get_best_cost();
    assert!((f1 - f2).abs() <= 1e-6 * f1, "{f1} vs {f2}");
    // argmin's own steepest descent would run on the same problem through
    // CostFunction + Gradient; check those agree with the BoxProblem path.
    use argmin::core::{CostFunction, Gradient};
    let mut g = vec![0.0; w0.len()];
    let f = p.cost_and_gradient(&w0, &mut g).unwrap();
    assert!((p.cost(&w0).unwrap() - f).abs() <= 1e-12 * f);
    assert_eq!(p.gradient(&w0).unwrap(), g);
    // Missing start point.
    let Err(e) = Executor::new(&p, ProjectedLbfgs::new()).run() else {
        panic!("a run without start point must fail")
    };
    assert!(e.to_string().contains("initial"), "{e}");
}

#[test]
fn bad_inputs_give_clear_errors() {
    let (d, ptv, _) = plan();
    // All-zero matrix.
    let zero = common::line_influence(2, [1, 1], [(0, 0, 0.0)]);
    assert!(matches!(
        FluenceProblem::new(&zero),
        Err(Error::IllPosed(_))
    ));
    // No objective.
    let mut p = FluenceProblem::new(&d).unwrap();
    assert!(matches!(
        optimize(&mut p, &Settings::default(), &mut |_| {}),
        Err(Error::Empty { .. })
    ));
    p.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap())
        .unwrap();
    // Weights of the wrong length, NaN or negative.
    let mut g = vec![0.0; 6];
    assert!(matches!(
        p.value_and_gradient(&[1.0; 5], &mut g),
        Err(Error::Core(_))
    ));
    for w in [vec![1.0; 5], vec![f64::NAN; 6], vec![-1.0; 6]] {
        let s = Settings {
            start: StartPoint::Weights(w),
            ..Settings::default()
        };
        assert!(optimize(&mut p, &s, &mut |_| {}).is_err());
    }
    // Invalid objective weight and settings.
    assert!(
        p.add_objective(f64::NAN, SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap())
            .is_err()
    );
    assert!(
        p.add_objective(-1.0, SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap())
            .is_err()
    );
    for s in [
        Settings {
            max_iterations: 0,
            ..Settings::default()
        },
        Settings {
            lbfgs_memory: 0,
            ..Settings::default()
        },
        Settings {
            time_limit_s: Some(-1.0),
            ..Settings::default()
        },
        Settings {
            penalty_growth: 0.5,
            ..Settings::default()
        },
    ] {
        assert!(matches!(s.validate(), Err(Error::InvalidParameter { .. })));
    }
    // Rows beyond the matrix.
    let o = SquaredDeviation::from_rows("far", vec![0, 99], vec![1.0, 1.0], Deviation::Absolute)
        .unwrap();
    assert!(p.add_objective(1.0, o).is_err());
}

/// The exact LAPACK solver against the enumerated NNLS solution, and the
/// quasi-Newton solver against the exact one on a piecewise-quadratic plan
/// (squared deviation plus under- and overdose).
#[cfg(feature = "lapack")]
#[test]
fn exact_solver_is_the_reference() {
    use dosepaint_optim::{ExactSettings, solve_exact};
    // NNLS toy: exact solution (1, 0).
    let (d, all) = matrix(3, 2, &[(0, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0), (2, 1, 1.0)]);
    let rows = d.rows_in_mask(all.mask()).unwrap();
    let mut p = FluenceProblem::new(&d).unwrap();
    p.add_objective(
        1.0,
        SquaredDeviation::from_rows("ls", rows, vec![2.0, 0.0, 0.0], Deviation::Absolute).unwrap(),
    )
    .unwrap();
    let r = solve_exact(&p, &ExactSettings::default(), None).unwrap();
    assert!(
        (r.weights[0] - 1.0).abs() < 1e-9 && r.weights[1].abs() < 1e-12,
        "{:?}",
        r.weights
    );

    let (d, ptv, oar) = plan();
    let mut p = FluenceProblem::new(&d).unwrap();
    p.add_objective(1.0, SquaredDeviation::uniform(&d, &ptv, 60.0).unwrap())
        .unwrap();
    p.add_objective(3.0, DoseLimits::overdose(&d, &oar, 15.0).unwrap())
        .unwrap();
    p.add_objective(2.0, DoseLimits::underdose(&d, &ptv, 58.0).unwrap())
        .unwrap();
    p.add_fluence_objective(0.01, FluenceSmoothness::new(d.layout()).unwrap())
        .unwrap();
    let mut reported = Vec::new();
    let exact =
        dosepaint_optim::solve_exact_with_progress(&p, &ExactSettings::default(), None, &mut |i| {
            reported.push((i.iteration, i.objective));
        })
        .unwrap();
    assert!(exact.stop_reason.is_converged(), "{:?}", exact.stop_reason);
    // One report per point of the history, numbered, objective decreasing.
    assert_eq!(reported.len(), exact.history.len());
    for (k, ((it, f), h)) in reported.iter().zip(&exact.history).enumerate() {
        assert_eq!(*it, k as u64);
        assert!((f - h).abs() <= 1e-12 * h.abs());
    }
    assert!(exact.history.windows(2).all(|w| w[1] < w[0]));
    let qn = solve(&mut p, &tight());
    assert!(
        (qn.objective - exact.objective).abs() <= 1e-8 * exact.objective,
        "{} vs {}",
        qn.objective,
        exact.objective
    );
    assert!(qn.objective >= exact.objective * (1.0 - 1e-12));
    // Non-quadratic objectives are refused.
    p.add_objective(1.0, dosepaint_optim::MaxDose::new(&d, &oar, 20.0).unwrap())
        .unwrap();
    assert!(matches!(
        solve_exact(&p, &ExactSettings::default(), None),
        Err(Error::Unsupported(_))
    ));
}

/// A user-defined problem (no line evaluations: the solvers fall back to the
/// projection-arc search): the bounded Rosenbrock function
/// `(1 - x)^2 + 100 (y - x^2)^2` on `[-2, 0.5] x [-2, 2]`, whose minimizer
/// on the box is `x = 0.5, y = 0.25` (the unconstrained one, (1, 1), is cut
/// off; at x = 0.5 the optimal y is x^2 and dF/dx = -1 + 0 < 0 pushes x
/// against its upper bound).
struct BoundedRosenbrock(dosepaint_optim::Bounds);

impl BoxProblem for BoundedRosenbrock {
    fn bounds(&self) -> &dosepaint_optim::Bounds {
        &self.0
    }
    fn cost_and_gradient(
        &self,
        v: &[f64],
        g: &mut [f64],
    ) -> Result<f64, dosepaint_optim::argmin::core::Error> {
        let (x, y) = (v[0], v[1]);
        g[0] = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x);
        g[1] = 200.0 * (y - x * x);
        Ok((1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2))
    }
}

#[test]
fn solvers_work_on_user_problems() {
    let bounds = dosepaint_optim::Bounds::new(vec![-2.0, -2.0], vec![0.5, 2.0]).unwrap();
    let problem = BoundedRosenbrock(bounds);
    let r = run_executor(&problem, ProjectedLbfgs::new(), &[-1.5, 1.5], 500);
    let w = r.get_best_param().unwrap();
    assert!(
        (w[0] - 0.5).abs() < 1e-9 && (w[1] - 0.25).abs() < 1e-7,
        "{w:?}"
    );
    let r = run_executor(&problem, ProjectedGradient::new(), &[-1.5, 1.5], 20000);
    let w = r.get_best_param().unwrap();
    assert!(
        (w[0] - 0.5).abs() < 1e-6 && (w[1] - 0.25).abs() < 1e-5,
        "{w:?}"
    );
}

/// The bad-input paths of bounds, preconditioners, solver settings and
/// constraints: each an `Err` of its kind, naming the variable or setting.
#[test]
fn bad_bounds_settings_and_constraints_are_named_errors() {
    use dosepaint_optim::{Bounds, Preconditioner};
    // Bounds: lengths, NaN, infinite lower, lower above upper (named).
    assert!(matches!(
        Bounds::new(vec![0.0; 2], vec![1.0; 3]),
        Err(Error::LengthMismatch { .. })
    ));
    for (l, u) in [(f64::NAN, 1.0), (0.0, f64::NAN), (f64::NEG_INFINITY, 1.0)] {
        let e = Bounds::new(vec![0.0, l], vec![1.0, u]).unwrap_err();
        assert!(e.to_string().contains("variable 1"), "{e}");
    }
    let e = Bounds::new(vec![0.0, 2.0], vec![1.0, 1.0]).unwrap_err();
    assert!(
        matches!(&e, Error::Contradictory(m) if m.contains("variable 1")),
        "{e}"
    );
    let (d, ptv, oar) = plan();
    let mut p = target_and_organ_problem(&d, &ptv, &oar, 15.0);
    assert!(matches!(
        p.set_bounds(Bounds::non_negative(5)),
        Err(Error::LengthMismatch {
            expected: 6,
            found: 5,
            ..
        })
    ));
    let e = p
        .set_bounds(Bounds::new(vec![0.0, 0.0, -1.0, 0.0, 0.0, 0.0], vec![9.0; 6]).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("beamlet 2"), "{e}");
    for u in [0.0, f64::NAN] {
        assert!(matches!(
            p.set_upper_bound(u),
            Err(Error::InvalidParameter { .. })
        ));
    }
    p.set_upper_bound(4.0).unwrap();
    let e = p
        .check_weights(&[1.0, 1.0, 1.0, 5.0, 1.0, 1.0])
        .unwrap_err();
    assert!(e.to_string().contains("beamlet 3"), "{e}");
    // Preconditioners: non-positive entries, overlapping or oversized blocks.
    for bad in [0.0, -1.0, f64::NAN] {
        let e = Preconditioner::diagonal(vec![1.0, bad]).unwrap_err();
        assert!(e.to_string().contains("entry 1"), "{e}");
    }
    let identity = vec![1.0, 0.0, 0.0, 1.0];
    for (blocks, needle) in [
        (vec![(0, identity.clone()), (1, vec![1.0])], "two blocks"),
        (vec![(2, identity.clone())], "exceeds"),
        (vec![(0, vec![1.0; 3])], "not square"),
        (vec![(0, vec![1.0; 4])], "not positive definite"),
    ] {
        let e = Preconditioner::blocks(3, blocks).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    // A preconditioner of the wrong length stops the solver at its start.
    let w0 = p.uniform_start().unwrap();
    let solver =
        ProjectedLbfgs::new().with_preconditioner(Preconditioner::diagonal(vec![1.0; 4]).unwrap());
    let Err(e) = Executor::new(&p, solver)
        .configure(|s| s.param(w0.clone()).max_iters(5))
        .run()
    else {
        panic!("a preconditioner of the wrong length must be refused")
    };
    assert!(e.to_string().contains("preconditioner"), "{e}");
    // Solver settings.
    let negative = Tolerances {
        projected_gradient_relative: -1.0,
        ..Tolerances::default()
    };
    assert!(ProjectedLbfgs::new().with_tolerances(negative).is_err());
    assert!(ProjectedGradient::new().with_tolerances(negative).is_err());
    assert!(ProjectedLbfgs::new().with_memory(0).is_err());
    for s in [
        Settings {
            max_outer_iterations: 0,
            ..Settings::default()
        },
        Settings {
            initial_penalty: 0.0,
            ..Settings::default()
        },
        Settings {
            penalty_growth: f64::NAN,
            ..Settings::default()
        },
        Settings {
            tolerances: Tolerances {
                relative_objective_change: f64::NAN,
                ..Tolerances::default()
            },
            ..Settings::default()
        },
    ] {
        assert!(matches!(s.validate(), Err(Error::InvalidParameter { .. })));
    }
    // Constraints: DVH fractions outside (0, 1], rows beyond the matrix.
    for v in [0.0, 1.5, f64::NAN] {
        assert!(matches!(
            Constraint::dose_at_volume(&d, &ptv, v, Sense::AtLeast, 50.0),
            Err(Error::InvalidParameter { .. })
        ));
    }
    assert!(matches!(
        Constraint::max_dose(&d, &oar, -1.0),
        Err(Error::InvalidParameter { .. })
    ));
    let far = Constraint::voxel_limits("far", vec![0, 99], vec![1.0; 2], Sense::AtMost).unwrap();
    let e = p.add_constraint(far).unwrap_err();
    assert!(e.to_string().contains("99"), "{e}");
}

/// The exact solver refuses constraints and a start that is not a plan.
#[cfg(feature = "lapack")]
#[test]
fn exact_solver_bad_inputs() {
    use dosepaint_optim::{ExactSettings, solve_exact};
    let (d, ptv, oar) = plan();
    let mut p = target_and_organ_problem(&d, &ptv, &oar, 15.0);
    let s = ExactSettings::default();
    assert!(matches!(
        solve_exact(&p, &s, Some(&[1.0; 5])),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        solve_exact(&p, &s, Some(&[1.0, 1.0, f64::NAN, 1.0, 1.0, 1.0])),
        Err(Error::NonFinite { .. })
    ));
    assert!(solve_exact(&p, &s, Some(&[-1.0; 6])).is_err());
    p.add_constraint(Constraint::max_dose(&d, &oar, 20.0).unwrap())
        .unwrap();
    assert!(matches!(
        solve_exact(&p, &s, None),
        Err(Error::Unsupported(_))
    ));
}
