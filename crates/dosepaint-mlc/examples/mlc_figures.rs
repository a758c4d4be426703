//! Leaf-sequencing figures on the benchmark set: 200 smooth-ish and 200
//! noisy 20 x 20 maps (fixed seeds) at 5, 10 and 20 levels; per algorithm
//! the mean number of segments, the universal segment lower bound
//! ([`LevelMap::segment_lower_bound`](dosepaint_mlc::LevelMap::segment_lower_bound), valid for any
//! decomposition) and the bound for minimum-MU decompositions, the mean
//! total monitor units (in levels) and its ratio to the lower bound, and
//! the time per map.
//!
//! Run: `cargo run --release -p dosepaint-mlc --example mlc_figures`
//! (add `-- --constrained` for the interleaf-constrained variants, Engel
//! with both of its searches, `ConstrainedSearch::Fast` and `::Windows`).

use std::time::Instant;

use dosepaint_mlc::testmaps::{MapKind, map_set};
use dosepaint_mlc::{Algorithm, ConstrainedSearch, LeafConstraints, SequencerParams};

/// Largest number of positive increments (from 0) over the rows whose
/// complexity equals the MU lower bound.
fn min_mu_segment_bound(l: &dosepaint_mlc::LevelMap) -> usize {
    let c = l.lower_bound();
    (0..l.n_rows())
        .filter(|&r| l.row_complexity(r) == c)
        .map(|r| {
            let mut prev = 0;
            let mut rises = 0;
            for col in 0..l.n_cols() {
                let v = l.level(r, col);
                if v > prev {
                    rises += 1;
                }
                prev = v;
            }
            rises
        })
        .max()
        .unwrap_or(0)
}

/// A `'static` name for the table (the example runs once).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn main() -> Result<(), dosepaint_mlc::Error> {
    let constrained = std::env::args().any(|a| a == "--constrained");
    let n_maps: usize = std::env::var("NMAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let free = LeafConstraints::default();
    let icc = LeafConstraints {
        interdigitation: false,
        ..free
    };
    let tg = LeafConstraints {
        tongue_and_groove: true,
        ..free
    };
    let both = LeafConstraints {
        interdigitation: false,
        tongue_and_groove: true,
        ..free
    };
    let (fast, windows) = (ConstrainedSearch::Fast, ConstrainedSearch::Windows);
    let mut variants = vec![
        ("sweep", Algorithm::Sweep, free, fast),
        ("xia-verhey", Algorithm::XiaVerhey, free, fast),
        ("engel", Algorithm::Engel, free, fast),
    ];
    if constrained {
        variants.clear();
        for (label, c) in [("icc", icc), ("tg", tg), ("icc+tg", both)] {
            for (name, algorithm, search) in [
                ("sweep", Algorithm::Sweep, fast),
                ("xia-verhey", Algorithm::XiaVerhey, fast),
                ("engel (fast)", Algorithm::Engel, fast),
                ("engel (windows)", Algorithm::Engel, windows),
            ] {
                variants.push((leak(format!("{name} {label}")), algorithm, c, search));
            }
        }
    }
    println!(
        "| maps | levels | algorithm | segments | segment bound (any) | segment bound at min MU | MU (levels) | MU / lower bound | ms per map |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for kind in [MapKind::Smooth, MapKind::Noisy] {
        let maps = map_set(kind, n_maps, 1, 20, 20);
        for levels in [5u32, 10, 20] {
            let mut xv_segments = None;
            for &(name, algorithm, constraints, search) in &variants {
                let seq = SequencerParams::new(algorithm, levels)
                    .with_constraints(constraints)
                    .with_constrained_search(search)
                    .check()?;
                let lvs: Vec<_> = maps
                    .iter()
                    .map(|m| seq.discretise(m))
                    .collect::<Result<_, _>>()?;
                let t0 = Instant::now();
                let ds: Vec<_> = lvs.iter().map(|l| seq.decompose(l)).collect();
                let ms = t0.elapsed().as_secs_f64() * 1e3 / n_maps as f64;
                let segs = ds.iter().map(|d| d.n_segments() as f64).sum::<f64>() / n_maps as f64;
                let mu = ds.iter().map(|d| d.total_mu() as f64).sum::<f64>() / n_maps as f64;
                let ratio = ds
                    .iter()
                    .map(|d| d.total_mu() as f64 / d.lower_bound.max(1) as f64)
                    .sum::<f64>()
                    / n_maps as f64;
                for (d, l) in ds.iter().zip(&lvs) {
                    let got: Vec<u32> = d.delivered_levels().iter().map(|&v| v as u32).collect();
                    assert_eq!(
                        got,
                        l.levels(),
                        "{name}: sequence does not reproduce the map"
                    );
                }
                // Any decomposition with the minimum MU needs at least as many
                // segments as a critical row (complexity = lower bound) has
                // rises: each segment spends part of exactly one of them.
                let seg_bound = lvs
                    .iter()
                    .map(|l| min_mu_segment_bound(l) as f64)
                    .sum::<f64>()
                    / n_maps as f64;
                let any_bound = lvs
                    .iter()
                    .map(|l| l.segment_lower_bound() as f64)
                    .sum::<f64>()
                    / n_maps as f64;
                for (d, l) in ds.iter().zip(&lvs) {
                    assert!(
                        d.n_segments() >= l.segment_lower_bound(),
                        "{name}: below the bound"
                    );
                }
                let mut note = String::new();
                if name.starts_with("xia-verhey") {
                    xv_segments = Some(segs);
                } else if let (true, Some(xv)) = (name.starts_with("engel"), xv_segments) {
                    note = format!(" ({:+.1} % vs Xia-Verhey)", 100.0 * (segs / xv - 1.0));
                }
                println!(
                    "| {} | {levels} | {name} | {segs:.1}{note} | {any_bound:.2} | {seg_bound:.1} | {mu:.1} | {ratio:.3} | {ms:.3} |",
                    match kind {
                        MapKind::Smooth => "smooth",
                        MapKind::Noisy => "noisy",
                    }
                );
            }
        }
    }
    Ok(())
}
