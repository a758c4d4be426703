//! Dose-influence matrix of the TG-119 C-shape (AAPM TG-119, Ezzell et al.,
//! Med Phys 36:5359, 2009; /work/shared/reference/tg119.md): 3 x 3 x 2.5 mm
//! CT (167 x 167 x 129), 9 coplanar beams at 0, 40, ..., 320 deg, 5 mm
//! bixels, 5 mm dose grid over the body.
//!
//! Before the criterion measurement it prints one report: beamlets,
//! non-zeros, seconds, non-zeros per second, matrix bytes, peak memory of
//! the build (VmHWM after resetting it through /proc/self/clear_refs), and
//! the integral dose dropped by the lateral cut-off and threshold versus the
//! exact model (same weights: 1 on every beamlet).
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use dosepaint_dose::{
    BeamletGridSpec, DoseEngine, DoseRows, FluenceMap, HuDensityCurve, Machine, PatientModel,
    PencilBeamEngine, PencilBeamOptions, beamlet_layout,
};

struct Case {
    patient: PatientModel,
    rows: DoseRows,
    beams: Vec<dosepaint_core::Beam>,
    layout: dosepaint_core::BeamletLayout,
}

fn case() -> Case {
    let ph = dosepaint_phantom::tg119().expect("TG-119 phantom");
    let patient =
        PatientModel::from_ct(&ph.ct, &HuDensityCurve::default(), ph.position).expect("patient");
    let dose_grid = ph
        .ct
        .grid()
        .resampled_to_spacing([5.0; 3])
        .expect("dose grid");
    let body = ph.structure("Body").expect("body");
    let rows = DoseRows::inside_structures(dose_grid, &[body]).expect("rows");
    let ptv = ph.structure("PTV").expect("PTV");
    let layout = beamlet_layout(&ph.beams, ph.position, &[ptv], &BeamletGridSpec::default())
        .expect("layout");
    Case {
        patient,
        rows,
        beams: ph.beams.clone(),
        layout,
    }
}

fn status_kib(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn report(c: &Case, engine: &PencilBeamEngine) {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base = status_kib("VmRSS:").unwrap_or(f64::NAN);
    let t = Instant::now();
    let d = engine
        .influence(&c.patient, &c.rows, &c.beams, &c.layout)
        .expect("matrix");
    let secs = t.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:").unwrap_or(f64::NAN);
    let bytes = d.memory_bytes() as f64;
    eprintln!(
        "TG-119 influence: {} beams, {} beamlets, {} rows, {} non-zeros, {secs:.2} s, \
         {:.1} M non-zeros/s, matrix {:.1} MiB, peak RSS increase during build {:.1} MiB \
         ({:.2} x matrix; peak reset: {reset}), rayon threads {}",
        c.beams.len(),
        d.n_beamlets(),
        d.n_rows(),
        d.nnz(),
        d.nnz() as f64 / secs / 1e6,
        bytes / 1048576.0,
        (peak - base) / 1024.0,
        (peak - base) * 1024.0 / bytes,
        rayon::current_num_threads(),
    );
    // Integral dose lost to the cut-off and threshold, weights 1 everywhere.
    let w = vec![1.0; c.layout.len()];
    let kept: f64 = d.dose(&w).expect("dose").iter().sum();
    drop(d);
    let exact = PencilBeamEngine::new(engine.machine().clone(), PencilBeamOptions::exact())
        .expect("exact engine");
    let t = Instant::now();
    let mut full = 0.0;
    for b in 0..c.beams.len() {
        let map = FluenceMap::from_weights(&c.layout, &w, b).expect("map");
        let dose = exact
            .beam_dose(&c.patient, &c.rows, &c.beams, &c.layout, b, &map)
            .expect("beam dose");
        full += dose.iter().sum::<f64>();
    }
    eprintln!(
        "integral dose over the body rows: matrix {kept:.1}, exact model {full:.1} (Gy x voxels); \
         dropped by cut-off {} mm and threshold {}: {:.2} % (exact forward dose in {:.1} s)",
        engine.options().lateral_cutoff_mm,
        engine.options().relative_threshold,
        100.0 * (1.0 - kept / full),
        t.elapsed().as_secs_f64()
    );
}

fn bench(cr: &mut Criterion) {
    let c = case();
    let engine = PencilBeamEngine::new(Machine::generic_6mv(), PencilBeamOptions::default())
        .expect("engine");
    report(&c, &engine);
    let mut g = cr.benchmark_group("dose");
    g.sample_size(10);
    g.bench_function("tg119_influence_9beams_5mm", |b| {
        b.iter(|| {
            engine
                .influence(&c.patient, &c.rows, &c.beams, &c.layout)
                .expect("matrix")
                .nnz()
        });
    });
    let prepared_beam = &c.beams[0];
    g.bench_function("tg119_prepare_one_beam", |b| {
        b.iter(|| {
            engine
                .prepare(&c.patient, &c.rows, &c.layout, 0, prepared_beam)
                .expect("prepare")
                .n_voxels()
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
