//! The small tools: `eval`, `gamma`, `lq`, `convert`.

use std::path::Path;

use dosepaint::core::{
    GRID_TOLERANCE_MM, Prescription, Provenance, Structure, StructureRole, Volume,
};
use dosepaint::eval::{
    ClinicalGoal, DoseStatistics, GammaParams, Normalization, PaintingParams, evaluate_goals,
};
use dosepaint::io::{
    NiftiReadOptions, NiftiWriteOptions, RtDoseReadOptions, SeriesReadOptions, SeriesSelector,
    SeriesWriteOptions, read_nifti, read_rtdose, read_rtstruct, read_series_dir, write_ct_series,
    write_nifti,
};
use dosepaint::radiobio::{AlphaBeta, Fractionation, isoeffective_total_dose};
use serde::Serialize;

use crate::CliResult;

fn is_nifti(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    [".nii", ".nii.gz"].iter().any(|ext| name.ends_with(ext))
}

/// A dose from NIfTI or RTDOSE.
fn read_dose(path: &Path) -> CliResult<Volume<f32>> {
    if !path.exists() {
        return Err(format!("{}: no such file", path.display()));
    }
    if is_nifti(path) {
        Ok(read_nifti(path, &NiftiReadOptions::default())
            .map_err(|e| e.to_string())?
            .to_f32())
    } else {
        Ok(read_rtdose(path, &RtDoseReadOptions::default())
            .map_err(|e| e.to_string())?
            .dose)
    }
}

fn structures(
    dose: &Volume<f32>,
    masks: &[String],
    rtstruct: Option<&Path>,
) -> CliResult<Vec<Structure>> {
    let mut out = Vec::new();
    for m in masks {
        let (name, file) = m
            .split_once('=')
            .ok_or_else(|| format!("--mask \"{m}\": write it as NAME=FILE, e.g. PTV=ptv.nii.gz"))?;
        let image = read_nifti(file, &NiftiReadOptions::default())
            .map_err(|e| e.to_string())?
            .to_f32();
        if !image.grid().approx_eq(dose.grid(), GRID_TOLERANCE_MM) {
            return Err(format!(
                "mask {name} ({file}) is not on the dose grid ({:?} vs {:?} voxels): resample it first",
                image.grid().dims(),
                dose.grid().dims()
            ));
        }
        let role = if name.to_ascii_uppercase().contains("TV") {
            StructureRole::Target
        } else {
            StructureRole::OrganAtRisk
        };
        out.push(Structure::new(name, role, image.map(|&v| v >= 0.5)).map_err(|e| e.to_string())?);
    }
    if let Some(path) = rtstruct {
        let rs = read_rtstruct(path).map_err(|e| e.to_string())?;
        out.extend(rs.to_structures(dose.grid()).map_err(|e| e.to_string())?);
    }
    if out.is_empty() {
        return Err("no structure given: add --mask NAME=FILE or --rtstruct FILE".into());
    }
    Ok(out)
}

#[derive(Serialize)]
struct EvalOutput {
    statistics: Vec<DoseStatistics>,
    goals: Vec<dosepaint::eval::GoalResult>,
    quality_factor: Option<f64>,
    fraction_within_5pct: Option<f64>,
}

pub(crate) fn eval(
    dose_path: &Path,
    masks: &[String],
    rtstruct: Option<&Path>,
    goals: &[String],
    prescription: Option<&Path>,
    fractions: u32,
    json: bool,
) -> CliResult {
    let dose = read_dose(dose_path)?;
    let structures = structures(&dose, masks, rtstruct)?;
    let mut statistics = Vec::new();
    for s in &structures {
        if s.is_empty() {
            eprintln!(
                "warning: structure {} has no voxel on the dose grid; skipped",
                s.name()
            );
            continue;
        }
        let a = if s.role() == StructureRole::Target {
            -10.0
        } else {
            1.0
        };
        statistics
            .push(DoseStatistics::compute(&dose, s, 0.01, Some(a)).map_err(|e| e.to_string())?);
    }
    let parsed: Vec<ClinicalGoal> = goals
        .iter()
        .map(|g| {
            g.parse()
                .map_err(|e: dosepaint::eval::Error| format!("goal \"{g}\": {e}"))
        })
        .collect::<Result<_, _>>()?;
    let goal_results =
        evaluate_goals(&parsed, &dose, &structures, 0.01).map_err(|e| e.to_string())?;
    let (mut qf, mut within) = (None, None);
    if let Some(rx_path) = prescription {
        let rx_map = read_dose(rx_path)?;
        let rx = Prescription::new(rx_map, fractions, Provenance::default())
            .map_err(|e| e.to_string())?;
        let report = PaintingParams::default()
            .check()
            .map_err(|e| e.to_string())?
            .evaluate(&dose, &rx, &[])
            .map_err(|e| e.to_string())?;
        qf = Some(report.target.quality_factor);
        within = Some(report.target.within_tolerance);
    }
    let out = EvalOutput {
        statistics,
        goals: goal_results,
        quality_factor: qf,
        fraction_within_5pct: within,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "structure", "cc", "min", "mean", "max", "D95", "D2"
    );
    for s in &out.statistics {
        println!(
            "{:<20} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.structure, s.volume_cm3, s.min_gy, s.mean_gy, s.max_gy, s.d95_gy, s.d2_gy
        );
    }
    for g in &out.goals {
        println!(
            "{:<40} {:>9.2}  {}",
            g.name,
            g.value,
            if g.passed { "pass" } else { "FAIL" }
        );
    }
    if let (Some(q), Some(w)) = (qf, within) {
        println!(
            "quality factor {q:.4}; {:.1} % of the target within +-5 %",
            100.0 * w
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn gamma(
    reference: &Path,
    evaluated: &Path,
    dd: f64,
    dta: f64,
    cutoff: f64,
    local: bool,
    map: Option<&Path>,
    json: bool,
) -> CliResult {
    let r = read_dose(reference)?;
    let e = read_dose(evaluated)?;
    let params = GammaParams {
        dose_difference_percent: dd,
        distance_to_agreement_mm: dta,
        normalization: if local {
            Normalization::Local
        } else {
            Normalization::Global { dose_gy: None }
        },
        lower_dose_cutoff_percent: cutoff,
        ..GammaParams::default()
    };
    let gamma = params.check().map_err(|e| e.to_string())?;
    let result = if r.grid().approx_eq(e.grid(), GRID_TOLERANCE_MM) {
        gamma.compute(&r, &e)
    } else {
        gamma.compute_resampled(&r, &e)
    }
    .map_err(|e| e.to_string())?;
    if let Some(path) = map {
        let values = result.map.map(|&g| if g.is_finite() { g } else { -1.0 });
        write_nifti(
            path,
            &values,
            &NiftiWriteOptions {
                description: "gamma (-1: not evaluated)".into(),
                ..NiftiWriteOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
    }
    if json {
        #[derive(Serialize)]
        struct Out {
            pass_rate: f64,
            evaluated_voxels: usize,
            passed_voxels: usize,
        }
        let out = Out {
            pass_rate: result.pass_rate,
            evaluated_voxels: result.evaluated_voxels,
            passed_voxels: result.passed_voxels,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "gamma {dd} %/{dta} mm ({}), cut-off {cutoff} %: {:.2} % pass ({} of {} voxels)",
            if local { "local" } else { "global" },
            100.0 * result.pass_rate,
            result.passed_voxels,
            result.evaluated_voxels
        );
    }
    Ok(())
}

pub(crate) fn lq(
    dose: f64,
    fractions: u32,
    alpha_beta: f64,
    to_fractions: Option<u32>,
    json: bool,
) -> CliResult {
    let ab = AlphaBeta::new(alpha_beta).map_err(|e| e.to_string())?;
    let schedule = Fractionation::new(dose, fractions).map_err(|e| e.to_string())?;
    let bed = schedule.bed(ab);
    let eqd2 = schedule.eqd2(ab);
    let iso = to_fractions
        .map(|m| isoeffective_total_dose(bed, m, ab).map(|d| (m, d)))
        .transpose()
        .map_err(|e| e.to_string())?;
    if json {
        #[derive(Serialize)]
        struct Out {
            dose_gy: f64,
            fractions: u32,
            alpha_beta_gy: f64,
            bed_gy: f64,
            eqd2_gy: f64,
            isoeffective: Option<(u32, f64)>,
        }
        let out = Out {
            dose_gy: dose,
            fractions,
            alpha_beta_gy: alpha_beta,
            bed_gy: bed,
            eqd2_gy: eqd2,
            isoeffective: iso,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "{dose} Gy in {fractions} fractions ({:.3} Gy/fx), alpha/beta {alpha_beta} Gy:",
            dose / f64::from(fractions)
        );
        println!("  BED  {bed:.2} Gy");
        println!("  EQD2 {eqd2:.2} Gy");
        if let Some((m, d)) = iso {
            println!(
                "  iso-effective in {m} fractions: {d:.2} Gy ({:.3} Gy/fx)",
                d / f64::from(m)
            );
        }
    }
    Ok(())
}

pub(crate) fn convert(input: &Path, output: &Path) -> CliResult {
    if !input.exists() {
        return Err(format!("{}: no such file or directory", input.display()));
    }
    if input.is_dir() {
        if !is_nifti(output) {
            return Err(format!(
                "{}: DICOM converts to NIfTI; name the output .nii or .nii.gz",
                output.display()
            ));
        }
        let image = read_series_dir(input, &SeriesSelector::Only, &SeriesReadOptions::default())
            .map_err(|e| e.to_string())?;
        write_nifti(output, &image.data.to_f32(), &NiftiWriteOptions::default())
            .map_err(|e| e.to_string())?;
        println!(
            "wrote {} ({:?} voxels)",
            output.display(),
            image.grid().dims()
        );
    } else if is_nifti(input) {
        let image = read_nifti(input, &NiftiReadOptions::default())
            .map_err(|e| e.to_string())?
            .to_f32();
        let (lo, hi) = (f32::from(i16::MIN), f32::from(i16::MAX));
        let clipped = image
            .as_slice()
            .iter()
            .filter(|v| !(lo..=hi).contains(&v.round()))
            .count();
        if clipped > 0 {
            eprintln!(
                "warning: {clipped} voxels of {} are outside the 16-bit range [{lo}, {hi}] (or NaN) \
                 and were clipped to it",
                input.display()
            );
        }
        let hu = image.map(|&v| v.round().clamp(lo, hi) as i16);
        let written = write_ct_series(output, &hu, &SeriesWriteOptions::default())
            .map_err(|e| e.to_string())?;
        println!(
            "wrote {} slices to {} (as a CT series in HU)",
            written.files.len(),
            output.display()
        );
    } else {
        return Err(format!(
            "{}: give a DICOM directory or a .nii/.nii.gz file",
            input.display()
        ));
    }
    Ok(())
}
