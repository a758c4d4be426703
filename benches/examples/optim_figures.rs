//! Convergence figures of `dosepaint-optim` on the synthetic TG-119 plan:
//! the time of the two products, the time per iteration, the iterations and
//! seconds to reach 1e-3 and 1e-4 (relative) of a reference optimum, and the
//! quality factor of a painted prescription (a smooth 50 -> 70 Gy boost
//! inside the C-shaped target).
//!
//! ```text
//! cargo run --release -p dosepaint-benches --example optim_figures [small]
//! cargo run --release -p dosepaint-benches --example optim_figures --features optim-lapack
//! ```
//!
//! The reference optimum is the exact piecewise-quadratic solver (feature
//! `optim-lapack`) or else a 5,000-iteration projected L-BFGS run.
//! QF = mean over target voxels of |D / D_presc - 1| (Ghent quality factor,
//! see shared/reference/dose_painting.md), computed here.

use std::fmt::Write as _;
use std::time::Instant;

use dosepaint_benches::{
    PAINTED_CORE_WEIGHT, PAINTED_NORMAL_WEIGHT, SyntheticPlan, SyntheticScale,
    painted_prescription, quality_factor, synthetic_plan,
};
use dosepaint_core::Prescription;
use dosepaint_optim::{
    Deviation, DoseLimits, FluenceProblem, IterationInfo, PreconditionerKind, Settings, SolverKind,
    SquaredDeviation, Tolerances, optimize,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One recorded iteration: index, seconds since the start, objective, weights.
struct Record {
    iteration: u64,
    seconds: f64,
    objective: f64,
    weights: Vec<f64>,
}

fn main() -> Res<()> {
    let scale = if std::env::args().any(|a| a == "small") {
        SyntheticScale::Small
    } else {
        SyntheticScale::Full
    };
    let t = Instant::now();
    let plan = synthetic_plan(scale);
    let d = &plan.influence;
    println!(
        "plan: {} rows, {} beamlets, {} non-zeros, built in {:.1} s, {} threads",
        d.n_rows(),
        d.n_beamlets(),
        d.nnz(),
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let products = two_products_s(&plan)?;
    println!(
        "two products (D w + D^T g, dense g): median {:.1} ms",
        products * 1e3
    );

    let normal = plan.body.difference(&plan.target)?.renamed("Body-PTV");
    let rx = painted_prescription(&plan);
    for painted in [false, true] {
        let mut problem = FluenceProblem::new(d)?;
        if painted {
            problem.add_objective(
                1.0,
                SquaredDeviation::to_prescription(d, &plan.target, &rx, Deviation::Absolute)?,
            )?;
            // Organ weights: of the pairs compared in docs/optimization.md,
            // the lightest that keeps the organ doses (core mean and D10,
            // normal-tissue mean) of the 3.3 times heavier pair within 0.5 Gy.
            problem.add_objective(
                PAINTED_CORE_WEIGHT,
                DoseLimits::overdose(d, &plan.core, 20.0)?,
            )?;
            problem.add_objective(
                PAINTED_NORMAL_WEIGHT,
                DoseLimits::overdose(d, &normal, 30.0)?,
            )?;
            println!(
                "\n== painted 50 -> 70 Gy (target squared deviation, core > 20 Gy x{PAINTED_CORE_WEIGHT}, normal tissue > 30 Gy x{PAINTED_NORMAL_WEIGHT})"
            );
        } else {
            problem.add_objective(1.0, SquaredDeviation::uniform(d, &plan.target, 50.0)?)?;
            problem.add_objective(1.0, DoseLimits::overdose(d, &plan.core, 20.0)?)?;
            problem.add_objective(0.3, DoseLimits::overdose(d, &normal, 30.0)?)?;
            println!(
                "\n== TG-119 50 Gy (target squared deviation, core > 20 Gy x1, normal tissue > 30 Gy x0.3)"
            );
        }
        let f_ref = reference(&mut problem)?;
        let qf_ref = if painted {
            let r = optimize(
                &mut problem,
                &Settings {
                    max_iterations: 2000,
                    ..Settings::default()
                },
                &mut |_| {},
            )?;
            let q = quality_factor(&plan, &rx, &r.weights);
            let dose = d.dose(&r.weights)?;
            let (core_mean, core_d10) = mean_and_d10(&dose, d, &plan.core)?;
            let (normal_mean, normal_d10) = mean_and_d10(&dose, d, &normal)?;
            println!(
                "QF at the optimum: {q:.4}; core mean {core_mean:.1} Gy, D10 {core_d10:.1} Gy; normal tissue mean {normal_mean:.2} Gy, D10 {normal_d10:.1} Gy"
            );
            Some(q)
        } else {
            None
        };
        let quality = painted.then_some((&plan, &rx, qf_ref));
        for (label, solver, pre, segment) in [
            (
                "projected L-BFGS, Jacobi",
                SolverKind::ProjectedLbfgs,
                Some(PreconditionerKind::Jacobi),
                true,
            ),
            (
                "L-BFGS, Jacobi, arc search",
                SolverKind::ProjectedLbfgs,
                Some(PreconditionerKind::Jacobi),
                false,
            ),
            (
                "projected L-BFGS, beam blocks",
                SolverKind::ProjectedLbfgs,
                Some(PreconditionerKind::BeamBlocks),
                true,
            ),
            (
                "projected L-BFGS, none",
                SolverKind::ProjectedLbfgs,
                None,
                true,
            ),
            (
                "projected gradient, Jacobi",
                SolverKind::ProjectedGradient,
                Some(PreconditionerKind::Jacobi),
                true,
            ),
        ] {
            let settings = Settings {
                solver,
                preconditioner: pre,
                segment_search: segment,
                max_iterations: 500,
                tolerances: Tolerances {
                    projected_gradient_relative: 0.0,
                    relative_objective_change: 0.0,
                    ..Tolerances::default()
                },
                ..Settings::default()
            };
            let mut records = Vec::new();
            let r = optimize(&mut problem, &settings, &mut |i| {
                records.push(Record::of(i));
            })?;
            let run = Run {
                label,
                records,
                iterations: r.iterations,
                evaluations: r.evaluations,
                time_s: r.time_s,
                objective: r.objective,
                weights: r.weights,
                mixed: false,
            };
            report(&run, f_ref, products, quality)?;
        }
        #[cfg(feature = "optim-lapack")]
        {
            let run = lbfgs_then_exact(&mut problem, HYBRID_LBFGS_ITERATIONS)?;
            report(&run, f_ref, products, quality)?;
        }
    }
    Ok(())
}

/// One solver run: its per-iteration records and totals.
struct Run {
    label: &'static str,
    records: Vec<Record>,
    iterations: u64,
    evaluations: u64,
    time_s: f64,
    objective: f64,
    weights: Vec<f64>,
    /// Whether the records mix two solvers' iterations.
    mixed: bool,
}

impl Record {
    fn of(i: &IterationInfo<'_>) -> Self {
        Self {
            iteration: i.iteration,
            seconds: i.elapsed_s,
            objective: i.objective,
            weights: i.weights.to_vec(),
        }
    }
}

/// Prints a run: time per iteration against the two products, distance to
/// the reference optimum, iterations and seconds to 1e-3 and 1e-4 of it,
/// and for the painted case when the quality factor reaches the peer's and
/// 1.05 x the optimum's.
fn report(
    run: &Run,
    f_ref: f64,
    products: f64,
    painted: Option<(&SyntheticPlan, &Prescription, Option<f64>)>,
) -> Res<()> {
    let records = &run.records;
    if let Some(first) = records.first() {
        println!(
            "{:>31}  time to the first iteration (start point, preconditioner, one iteration): {:.2} s",
            "", first.seconds
        );
    }
    // Iterations of the exact solver are not comparable with L-BFGS ones.
    let per_iteration = if run.mixed {
        "mixed iterations".to_string()
    } else {
        let s = (records.last().map_or(0.0, |r| r.seconds)
            - records.first().map_or(0.0, |r| r.seconds))
            / (records.len().max(2) - 1) as f64;
        format!("{:.1} ms/it = {:.2} x products", s * 1e3, s / products)
    };
    let reach = |tol: f64| {
        records
            .iter()
            .find(|r| r.objective - f_ref <= tol * f_ref)
            .map_or("not reached".to_string(), |r| {
                format!("{} it, {:.2} s", r.iteration, r.seconds)
            })
    };
    println!(
        "{:>31}: {} it ({} evaluations) {:.1} s, {per_iteration}; F - F* = {:.1e} F*; 1e-3: {}; 1e-4: {}",
        run.label,
        run.iterations,
        run.evaluations,
        run.time_s,
        (run.objective - f_ref) / f_ref,
        reach(1e-3),
        reach(1e-4),
    );
    if let Some((plan, rx, Some(qf_opt))) = painted {
        let q_end = quality_factor(plan, rx, &run.weights);
        let mut line = format!("{:>31} ", "");
        for goal in [PEER_QF, qf_opt * 1.05] {
            let mut found = None;
            for rec in records {
                if quality_factor(plan, rx, &rec.weights) <= goal {
                    found = Some((rec.iteration, rec.seconds));
                    break;
                }
            }
            match found {
                Some((it, s)) => write!(line, " QF <= {goal:.4} at {it} it, {s:.2} s;")?,
                None => write!(line, " QF <= {goal:.4} not reached;")?,
            }
        }
        println!("{line} QF at the end {q_end:.4}");
    }
    Ok(())
}

/// Projected L-BFGS iterations before the exact solver takes over.
#[cfg(feature = "optim-lapack")]
const HYBRID_LBFGS_ITERATIONS: u64 = 100;

/// `iterations` of projected L-BFGS (beam blocks), then the exact solver
/// from its weights: the records continue the iteration count (one per
/// outer iteration of the exact solver) and the clock.
#[cfg(feature = "optim-lapack")]
fn lbfgs_then_exact(problem: &mut FluenceProblem<'_>, iterations: u64) -> Res<Run> {
    let t = Instant::now();
    let mut records = Vec::new();
    let first = optimize(
        problem,
        &Settings {
            max_iterations: iterations,
            tolerances: Tolerances {
                projected_gradient_relative: 0.0,
                relative_objective_change: 0.0,
                ..Tolerances::default()
            },
            ..Settings::default()
        },
        &mut |i| records.push(Record::of(i)),
    )?;
    let offset = t.elapsed().as_secs_f64();
    let exact = dosepaint_optim::solve_exact_with_progress(
        problem,
        &dosepaint_optim::ExactSettings::default(),
        Some(&first.weights),
        &mut |i| {
            if i.iteration > 0 {
                let mut r = Record::of(i);
                r.iteration += first.iterations;
                r.seconds += offset;
                records.push(r);
            }
        },
    )?;
    Ok(Run {
        label: "L-BFGS 100 it, then exact",
        records,
        iterations: first.iterations + exact.iterations,
        evaluations: first.evaluations + exact.evaluations,
        time_s: t.elapsed().as_secs_f64(),
        objective: exact.objective,
        weights: exact.weights,
        mixed: true,
    })
}

/// pyRadPlan's quality factor on the painted case (the issue's peer figure).
const PEER_QF: f64 = 0.0043;

/// Mean and D10 (dose to the hottest 10 %) of a structure's rows, Gy.
fn mean_and_d10(
    dose: &[f64],
    d: &dosepaint_core::DoseInfluence,
    s: &dosepaint_core::Structure,
) -> Res<(f64, f64)> {
    let rows = d.rows_in_mask(s.mask())?;
    let mut v: Vec<f64> = rows.iter().map(|&r| dose[r as usize]).collect();
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let d10 = v.get(v.len() * 9 / 10).copied().unwrap_or(0.0);
    Ok((mean, d10))
}

/// The reference optimum's objective value.
fn reference(problem: &mut FluenceProblem<'_>) -> Res<f64> {
    let t = Instant::now();
    #[cfg(feature = "optim-lapack")]
    {
        let r = dosepaint_optim::solve_exact(
            problem,
            &dosepaint_optim::ExactSettings::default(),
            None,
        )?;
        println!(
            "reference (exact, LAPACK): F* = {:.9e} after {} outer iterations, {:.1} s, stop {:?}, projected gradient {:.1e}",
            r.objective,
            r.iterations,
            t.elapsed().as_secs_f64(),
            r.stop_reason,
            r.projected_gradient_norm
        );
        let _ = &problem;
        Ok(r.objective)
    }
    #[cfg(not(feature = "optim-lapack"))]
    {
        let settings = Settings {
            max_iterations: 5000,
            tolerances: Tolerances {
                projected_gradient_relative: 0.0,
                relative_objective_change: 0.0,
                ..Tolerances::default()
            },
            ..Settings::default()
        };
        let r = optimize(problem, &settings, &mut |_| {})?;
        println!(
            "reference (5,000-iteration projected L-BFGS): F* = {:.9e}, {:.1} s, stop {:?}",
            r.objective,
            t.elapsed().as_secs_f64(),
            r.stop_reason
        );
        Ok(r.objective)
    }
}

/// Median time of `D w` plus `D^T g` with a dense `g`.
fn two_products_s(plan: &SyntheticPlan) -> Res<f64> {
    let d = &plan.influence;
    let w = vec![1.0; d.n_beamlets()];
    let g: Vec<f64> = (0..d.n_rows()).map(|r| (r % 7) as f64 - 3.0).collect();
    let mut dose = vec![0.0; d.n_rows()];
    let mut grad = vec![0.0; d.n_beamlets()];
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        d.dose_into(&w, &mut dose)?;
        d.transpose_product_into(&g, &mut grad)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
