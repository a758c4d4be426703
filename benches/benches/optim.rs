//! Criterion benchmarks of `dosepaint-optim` on the TG-119-sized synthetic
//! matrix (about 650,000 rows, 2,750 beamlets, 34 million non-zeros):
//!
//! * `two_products`: one `D w` plus one `D^T g` with a dense `g` (the budget
//!   unit of the issue: an iteration may cost 1.3 x this);
//! * `evaluation`: one objective-and-gradient evaluation of the TG-119
//!   problem (target squared deviation to 50 Gy, core overdose above 20 Gy,
//!   normal tissue (body minus target) overdose above 30 Gy, over all their
//!   voxels, no subsampling) at a converged-ish point;
//! * `lbfgs_iteration` / `pg_iteration`: one steady-state solver iteration
//!   (`Solver::next_iter`, line search included) after 100 iterations from a
//!   warm start.
//!
//! The convergence study (reference optimum, iterations and seconds to
//! 1e-3 / 1e-4, the painted prescription's quality factor) is the example
//! `optim_figures`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dosepaint_benches::{SyntheticScale, synthetic_plan};
use dosepaint_optim::argmin::core::{Executor, Problem, Solver};
use dosepaint_optim::{
    DoseLimits, FluenceProblem, PreconditionerKind, ProjectedGradient, ProjectedLbfgs, Settings,
    SquaredDeviation, Tolerances, optimize,
};

fn optim(c: &mut Criterion) {
    let plan = synthetic_plan(SyntheticScale::Full);
    let d = &plan.influence;
    let normal = plan
        .body
        .difference(&plan.target)
        .unwrap()
        .renamed("Body-PTV");
    let mut problem = FluenceProblem::new(d).unwrap();
    problem
        .add_objective(
            1.0,
            SquaredDeviation::uniform(d, &plan.target, 50.0).unwrap(),
        )
        .unwrap();
    problem
        .add_objective(1.0, DoseLimits::overdose(d, &plan.core, 20.0).unwrap())
        .unwrap();
    problem
        .add_objective(0.3, DoseLimits::overdose(d, &normal, 30.0).unwrap())
        .unwrap();
    // A warm start: 30 iterations from the best uniform plan.
    let warm = optimize(
        &mut problem,
        &Settings {
            max_iterations: 30,
            tolerances: Tolerances {
                relative_objective_change: 0.0,
                ..Tolerances::default()
            },
            ..Settings::default()
        },
        &mut |_| {},
    )
    .unwrap()
    .weights;
    let pre = problem
        .preconditioner(&warm, PreconditionerKind::Jacobi)
        .unwrap();

    let w = vec![1.0; d.n_beamlets()];
    let g: Vec<f64> = (0..d.n_rows()).map(|r| (r % 7) as f64 - 3.0).collect();
    let mut dose = vec![0.0; d.n_rows()];
    let mut grad = vec![0.0; d.n_beamlets()];
    let mut group = c.benchmark_group("optim_tg119_like");
    group.sample_size(10);
    group.bench_function("two_products", |b| {
        b.iter(|| {
            d.dose_into(&w, &mut dose).unwrap();
            d.transpose_product_into(&g, &mut grad).unwrap();
        });
    });
    group.bench_function("evaluation", |b| {
        b.iter(|| problem.value_and_gradient(&warm, &mut grad).unwrap());
    });
    // One steady-state iteration: run 100 iterations under the executor,
    // then time `next_iter` on clones of the solver and its state.
    let lbfgs = Executor::new(
        &problem,
        ProjectedLbfgs::new().with_preconditioner(pre.clone()),
    )
    .configure(|s| s.param(warm.clone()).max_iters(100))
    .run()
    .unwrap();
    let (lbfgs_solver, lbfgs_state) = (lbfgs.solver().clone(), lbfgs.state().clone());
    group.bench_function("lbfgs_iteration", |b| {
        b.iter_batched(
            || {
                (
                    lbfgs_solver.clone(),
                    lbfgs_state.clone(),
                    Problem::new(&problem),
                )
            },
            |(mut solver, state, mut p)| solver.next_iter(&mut p, state).unwrap().0.get_cost(),
            BatchSize::LargeInput,
        );
    });
    let pg = Executor::new(
        &problem,
        ProjectedGradient::new().with_preconditioner(pre.clone()),
    )
    .configure(|s| s.param(warm.clone()).max_iters(100))
    .run()
    .unwrap();
    let (pg_solver, pg_state) = (pg.solver().clone(), pg.state().clone());
    group.bench_function("pg_iteration", |b| {
        b.iter_batched(
            || (pg_solver.clone(), pg_state.clone(), Problem::new(&problem)),
            |(mut solver, state, mut p)| solver.next_iter(&mut p, state).unwrap().0.get_cost(),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, optim);
criterion_main!(benches);
