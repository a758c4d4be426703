//! Times the parts of the TG-119 influence build (prepare, columns, builder).
//! Run: `cargo run --release -p dosepaint-dose --example profile_tg119`
use std::time::Instant;

use dosepaint_core::InfluenceBuilder;
use dosepaint_dose::{
    BeamletGridSpec, DoseRows, HuDensityCurve, Machine, PatientModel, PencilBeamEngine,
    PencilBeamOptions, PreparedBeam, beamlet_layout,
};
use rayon::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cutoff: f64 = std::env::args().nth(1).map_or(50.0, |s| s.parse().unwrap());
    let ph = dosepaint_phantom::tg119()?;
    let patient = PatientModel::from_ct(&ph.ct, &HuDensityCurve::default(), ph.position)?;
    let dose_grid = ph.ct.grid().resampled_to_spacing([5.0; 3])?;
    let rows = DoseRows::inside_structures(dose_grid, &[ph.structure("Body")?])?;
    let layout = beamlet_layout(
        &ph.beams,
        ph.position,
        &[ph.structure("PTV")?],
        &BeamletGridSpec::default(),
    )?;
    let threshold: f64 = std::env::args().nth(2).map_or(1e-4, |s| s.parse().unwrap());
    let options = PencilBeamOptions {
        lateral_cutoff_mm: cutoff,
        relative_threshold: threshold,
        ..PencilBeamOptions::default()
    };
    let engine = PencilBeamEngine::new(Machine::generic_6mv(), options)?;
    let (mut tp, mut tc, mut tb) = (0.0, 0.0, 0.0);
    let mut nnz = 0usize;
    let builder =
        InfluenceBuilder::new(rows.grid().clone(), rows.voxels().to_vec(), layout.clone())?;
    for (b, beam) in ph.beams.iter().enumerate() {
        let t = Instant::now();
        let p = engine.prepare(&patient, &rows, &layout, b, beam)?;
        tp += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let n: usize = p
            .column_batches()
            .into_par_iter()
            .map(|batch| {
                let mut n = 0;
                p.batch_columns(batch, &mut |_, r, _| {
                    n += r.len();
                    Ok(())
                })
                .unwrap();
                n
            })
            .sum();
        tc += t.elapsed().as_secs_f64();
        nnz += n;
        let t = Instant::now();
        p.column_batches().into_par_iter().for_each(|batch| {
            p.batch_columns(batch, &mut |j, r, v| {
                builder.add_column(j, r, v)?;
                Ok(())
            })
            .unwrap();
        });
        tb += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    let d = builder.finish()?;
    let tf = t.elapsed().as_secs_f64();
    println!(
        "cutoff {cutoff} beamlets {} nnz {nnz} prepare {tp:.2} s, columns only {tc:.2} s, columns + parallel add {tb:.2} s, finish {tf:.2} s, nnz {}",
        layout.len(),
        d.nnz()
    );
    // Dose lost versus the exact model, weights 1: whole body and PTV.
    let w = vec![1.0; layout.len()];
    let kept = d.dose(&w)?;
    let exact = PencilBeamEngine::new(Machine::generic_6mv(), PencilBeamOptions::exact())?;
    let mut full = vec![0.0; rows.len()];
    let t = Instant::now();
    for (b, beam) in ph.beams.iter().enumerate() {
        let p = exact.prepare(&patient, &rows, &layout, b, beam)?;
        let map = dosepaint_dose::FluenceMap::from_weights(&layout, &w, b)?;
        p.fluence_dose(&map, &mut full)?;
    }
    println!(
        "exact model (no cut-off): prepare + forward dose of the 9 beams {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // A modulated map (every bixel differs from its neighbours) on beam 0.
    let p = exact.prepare(&patient, &rows, &layout, 0, &ph.beams[0])?;
    let modulated: Vec<f64> = (0..layout.len())
        .map(|j| ((j * 7919) % 13) as f64 / 6.0)
        .collect();
    let map = dosepaint_dose::FluenceMap::from_weights(&layout, &modulated, 0)?;
    let mut dose = vec![0.0; rows.len()];
    let t = Instant::now();
    p.fluence_dose(&map, &mut dose)?;
    println!(
        "exact forward dose of a modulated {} x {} map on beam 0 ({} voxels): {:.3} s",
        map.n_cols(),
        map.n_rows(),
        p.n_voxels(),
        t.elapsed().as_secs_f64()
    );
    let ptv_rows = d.rows_in_mask(ph.structure("PTV")?.resample(rows.grid()).mask())?;
    let sum = |v: &[f64], idx: Option<&[u32]>| -> f64 {
        match idx {
            Some(i) => i.iter().map(|&r| v[r as usize]).sum(),
            None => v.iter().sum(),
        }
    };
    println!(
        "threshold {threshold}: integral dose lost {:.2} %, PTV mean dose lost {:.2} %",
        100.0 * (1.0 - sum(&kept, None) / sum(&full, None)),
        100.0 * (1.0 - sum(&kept, Some(&ptv_rows)) / sum(&full, Some(&ptv_rows)))
    );
    Ok(())
}
