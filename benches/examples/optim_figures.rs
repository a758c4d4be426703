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

use std::time::Instant;

use dosepaint_benches::{SyntheticPlan, SyntheticScale, synthetic_plan};
use dosepaint_core::{Prescription, Provenance, Volume};
use dosepaint_optim::{
    Deviation, DoseLimits, FluenceProblem, PreconditionerKind, Settings, SolverKind,
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
    let rx = painted_prescription(&plan)?;
    for painted in [false, true] {
        let mut problem = FluenceProblem::new(d)?;
        if painted {
            problem.add_objective(
                1.0,
                SquaredDeviation::to_prescription(d, &plan.target, &rx, Deviation::Absolute)?,
            )?;
            problem.add_objective(0.1, DoseLimits::overdose(d, &plan.core, 20.0)?)?;
            problem.add_objective(0.02, DoseLimits::overdose(d, &normal, 30.0)?)?;
            println!(
                "\n== painted 50 -> 70 Gy (target squared deviation, core > 20 Gy x0.1, normal tissue > 30 Gy x0.02)"
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
            let q = quality_factor(&plan, &rx, &r.weights)?;
            println!("QF at the optimum: {q:.4}");
            Some(q)
        } else {
            None
        };
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
                records.push(Record {
                    iteration: i.iteration,
                    seconds: i.elapsed_s,
                    objective: i.objective,
                    weights: i.weights.to_vec(),
                });
            })?;
            if let Some(first) = records.first() {
                println!(
                    "{:>31}  time to the first iteration (start point, preconditioner, one iteration): {:.2} s",
                    "", first.seconds
                );
            }
            let per_iteration = (records.last().map_or(0.0, |r| r.seconds)
                - records.first().map_or(0.0, |r| r.seconds))
                / (records.len().max(2) - 1) as f64;
            let reach = |tol: f64| {
                records
                    .iter()
                    .find(|r| r.objective - f_ref <= tol * f_ref)
                    .map_or("not reached".to_string(), |r| {
                        format!("{} it, {:.2} s", r.iteration, r.seconds)
                    })
            };
            println!(
                "{label:>31}: {} it ({} evaluations) {:.1} s, {:.1} ms/it = {:.2} x products; F - F* = {:.1e} F*; 1e-3: {}; 1e-4: {}",
                r.iterations,
                r.evaluations,
                r.time_s,
                per_iteration * 1e3,
                per_iteration / products,
                (r.objective - f_ref) / f_ref,
                reach(1e-3),
                reach(1e-4),
            );
            if let Some(qf_opt) = qf_ref {
                let target = qf_opt.max(0.0043) * 1.05;
                let mut found = None;
                for rec in records.iter().step_by(5) {
                    let q = quality_factor(&plan, &rx, &rec.weights)?;
                    if q <= target {
                        found = Some((rec.iteration, rec.seconds, q));
                        break;
                    }
                }
                let q_end = quality_factor(&plan, &rx, &r.weights)?;
                match found {
                    Some((it, s, q)) => println!(
                        "{:>31}  QF <= {target:.4} (1.05 x max(0.0043, optimum)) at {it} it, {s:.2} s (QF {q:.4}); QF at the end {q_end:.4}",
                        ""
                    ),
                    None => println!(
                        "{:>31}  QF {target:.4} not reached; QF at the end {q_end:.4}",
                        ""
                    ),
                }
            }
        }
    }
    Ok(())
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

/// 50 Gy in the C, with a smooth (Gaussian, sigma 15 mm) boost to 70 Gy
/// around the middle of its back (y = 26.25 mm, the mid-radius of the C).
fn painted_prescription(plan: &SyntheticPlan) -> Res<Prescription> {
    let grid = plan.target.grid().clone();
    let mask = plan.target.mask();
    let values = Volume::from_fn(grid.clone(), |v| {
        if !mask[v] {
            return 0.0f32;
        }
        let p = grid.voxel_center(v);
        let r2 = p[0].powi(2) + (p[1] - 26.25).powi(2) + p[2].powi(2);
        (50.0 + 20.0 * (-r2 / (2.0 * 15.0f64.powi(2))).exp()) as f32
    });
    Ok(Prescription::new(
        values,
        25,
        Provenance {
            description: "synthetic smooth boost 50-70 Gy".into(),
            spec: String::new(),
        },
    )?)
}

/// QF = mean over target voxels of |D / D_presc - 1|.
fn quality_factor(plan: &SyntheticPlan, rx: &Prescription, w: &[f64]) -> Res<f64> {
    let d = &plan.influence;
    let dose = d.dose(w)?;
    let rows = d.rows_in_mask(plan.target.mask())?;
    let p = rx.target_gy().as_slice();
    let sum: f64 = rows
        .iter()
        .map(|&r| (dose[r as usize] / f64::from(p[d.voxels()[r as usize] as usize]) - 1.0).abs())
        .sum();
    Ok(sum / rows.len() as f64)
}
