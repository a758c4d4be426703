//! Criterion benchmarks of dosepaint-io: reading a 512 x 512 x 200 CT series
//! (written by the series writer into a temporary directory) into a
//! `Volume<i16>`, and writing and reading a 512 x 512 x 200 `f32` volume as
//! `.nii.gz`.

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_core::{Grid, Volume};
use dosepaint_io::{
    ImageData, NiftiReadOptions, NiftiWriteOptions, SeriesReadOptions, SeriesSelector,
    SeriesWriteOptions, read_nifti, read_series_dir, write_ct_series, write_nifti,
};

fn io(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("dosepaint-io-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let grid = Grid::new([512, 512, 200], [0.98, 0.98, 2.0], [-250.0, -250.0, -200.0])
        .expect("valid grid");
    // A CT-like phantom: air outside an elliptic body of water with a bone ring.
    let hu = Volume::from_fn(grid.clone(), |[i, j, k]| {
        let (x, y) = (i as f64 - 256.0, (j as f64 - 256.0) * 1.3);
        let r = (x * x + y * y).sqrt();
        if r > 220.0 {
            -1000
        } else if r > 200.0 {
            900 + (k % 7) as i16
        } else {
            ((i * 7 + j * 3 + k) % 41) as i16 - 20
        }
    });
    let ct_dir = dir.join("ct");
    write_ct_series(&ct_dir, &hu, &SeriesWriteOptions::default()).expect("write CT series");
    let mut group = c.benchmark_group("io_512x512x200");
    group.sample_size(10);
    group.bench_function("read_ct_series_i16", |b| {
        b.iter(|| {
            let img = read_series_dir(
                &ct_dir,
                &SeriesSelector::Only,
                &SeriesReadOptions::default(),
            )
            .expect("read CT");
            assert!(matches!(img.data, ImageData::I16(_)));
            img
        });
    });
    let dose = hu.map(|&h| (f32::from(h) + 1000.0) * 0.035);
    let nii = dir.join("dose.nii.gz");
    group.bench_function("write_nifti_gz_f32", |b| {
        b.iter(|| write_nifti(&nii, &dose, &NiftiWriteOptions::default()).expect("write NIfTI"));
    });
    group.bench_function("read_nifti_gz_f32", |b| {
        b.iter(|| read_nifti(&nii, &NiftiReadOptions::default()).expect("read NIfTI"));
    });
    group.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, io);
criterion_main!(benches);
