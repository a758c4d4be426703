//! Criterion benchmarks of dosepaint-core's volume operations on a
//! head-and-neck-sized grid: a 5 mm ellipsoidal margin (exact Euclidean
//! distance transform) on 256 x 256 x 120 voxels of 1 x 1 x 2.5 mm, trilinear
//! resampling of a 512 x 512 x 120 CT (0.98 x 0.98 x 2.5 mm) onto a 2.5 mm
//! dose grid, and loading a TG-119-sized dose-influence matrix from CSR arrays
//! (what a cache file holds), against the triplet route `from_csr` took
//! before.

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_benches::{SyntheticScale, synthetic_plan};
use dosepaint_core::{DoseInfluence, Grid, Interpolation, Structure, StructureRole, Volume};

fn margins(c: &mut Criterion) {
    let grid = Grid::new([256, 256, 120], [1.0, 1.0, 2.5], [-128.0, -128.0, -150.0]).unwrap();
    // An ellipsoidal GTV of semi-axes 30, 20 and 25 mm.
    let gtv = Structure::new(
        "GTV",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), |v| {
            let p = grid.voxel_center(v);
            (p[0] / 30.0).powi(2) + (p[1] / 20.0).powi(2) + (p[2] / 25.0).powi(2) <= 1.0
        }),
    )
    .unwrap();
    let mut group = c.benchmark_group("core_volume");
    group.sample_size(10);
    group.bench_function("dilate_5mm_256x256x120", |b| {
        b.iter(|| gtv.dilate([5.0; 3]).unwrap());
    });
    group.bench_function("erode_5mm_256x256x120", |b| {
        b.iter(|| gtv.erode([5.0; 3]).unwrap());
    });
    let ct_grid = Grid::new([512, 512, 120], [0.98, 0.98, 2.5], [-250.0, -250.0, -150.0]).unwrap();
    let ct = Volume::from_fn(ct_grid.clone(), |[i, j, k]| {
        ((i * 7 + j * 3 + k) % 200) as f32
    });
    let dose_grid = ct_grid.resampled_to_spacing([2.5; 3]).unwrap();
    group.bench_function("resample_ct_512x512x120_to_2.5mm_linear", |b| {
        b.iter(|| ct.resample(&dose_grid, Interpolation::Linear, -1000.0));
    });
    group.bench_function("structure_resample_256x256x120_to_2.5mm", |b| {
        let coarse = grid.resampled_to_spacing([2.5; 3]).unwrap();
        b.iter(|| gtv.resample(&coarse));
    });
    group.finish();
}

fn csr_load(c: &mut Criterion) {
    let plan = synthetic_plan(SyntheticScale::Full);
    let d = &plan.influence;
    let (row_ptr, cols, vals) = d.to_csr();
    let mut group = c.benchmark_group("core_influence");
    group.sample_size(10);
    group.bench_function("from_csr_tg119_like", |b| {
        b.iter(|| {
            DoseInfluence::from_csr(
                d.grid().clone(),
                d.voxels().to_vec(),
                d.layout().clone(),
                &row_ptr,
                &cols,
                &vals,
            )
            .unwrap()
        });
    });
    // What `from_csr` did before it copied blocks straight from the arrays.
    group.bench_function("from_triplets_tg119_like", |b| {
        let (row_ptr, cols, vals) = (&row_ptr, &cols, &vals);
        b.iter(|| {
            let triplets = (0..d.n_rows()).flat_map(|r| {
                (row_ptr[r] as usize..row_ptr[r + 1] as usize)
                    .map(move |e| (r as u32, cols[e], vals[e]))
            });
            DoseInfluence::from_triplets(
                d.grid().clone(),
                d.voxels().to_vec(),
                d.layout().clone(),
                triplets,
            )
            .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, margins, csr_load);
criterion_main!(benches);
