//! Writing a plan's outputs: `metrics.json`, NIfTI volumes, DICOM (CT series,
//! RTSTRUCT, RTDOSE, RTPLAN) and the HTML report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dosepaint_io::{
    NiftiWriteOptions, ReferencedSeries, RoiToWrite, RtDoseWriteOptions, RtPlanToWrite,
    RtStructWriteOptions, SeriesWriteOptions, write_ct_series, write_nifti, write_rtdose,
    write_rtplan, write_rtstruct,
};
use serde::{Deserialize, Serialize};

use crate::evaluate::{BeamSequencingFigures, DoseKind, GoalOutcome, LevelComparison, Probability};
use crate::pipeline::{MatrixFigures, PlanResult};
use crate::spec::PlanSpec;
use crate::{Error, Result};

/// The machine-readable summary written as `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Plan name.
    pub name: String,
    /// Seconds per stage, and `total`.
    pub timings_s: BTreeMap<String, f64>,
    /// Clinical goals (optimized and delivered dose).
    pub goals: Vec<GoalOutcome>,
    /// QF of the optimized dose.
    pub quality_factor: f64,
    /// Fraction of target voxels within +-5 % (optimized dose).
    pub fraction_within_5pct: f64,
    /// QF of the delivered dose.
    pub delivered_quality_factor: f64,
    /// Fraction within +-5 % (delivered dose).
    pub delivered_fraction_within_5pct: f64,
    /// QF of an ideal uniform plan at the mean prescribed dose.
    pub uniform_plan_quality_factor: f64,
    /// TCP/NTCP.
    pub probabilities: Vec<Probability>,
    /// Gamma pass rate, delivered vs optimized.
    pub gamma_pass_rate: f64,
    /// Sequencing: segments and monitor units per beam.
    pub sequencing: Vec<BeamSequencingFigures>,
    /// Total segments.
    pub total_segments: usize,
    /// Total monitor units (beamlet-weight units, course).
    pub total_monitor_units: f64,
    /// Sequencing degradation by number of levels.
    pub level_comparison: Vec<LevelComparison>,
    /// The dose-influence matrix.
    pub matrix: MatrixFigures,
    /// Optimizer iterations.
    pub optimizer_iterations: u64,
    /// Why the optimizer stopped.
    pub optimizer_stop_reason: String,
}

impl Metrics {
    /// The summary of a plan result.
    pub fn of(result: &PlanResult) -> Self {
        let e = &result.evaluation;
        Self {
            name: result.name.clone(),
            timings_s: result.timings_s.clone(),
            goals: e.goals.clone(),
            quality_factor: e.painting.target.quality_factor,
            fraction_within_5pct: e.painting.target.within_tolerance,
            delivered_quality_factor: e.delivered_painting.target.quality_factor,
            delivered_fraction_within_5pct: e.delivered_painting.target.within_tolerance,
            uniform_plan_quality_factor: e.uniform_plan_quality_factor,
            probabilities: e.probabilities.clone(),
            gamma_pass_rate: e.gamma_pass_rate,
            sequencing: e.sequencing.clone(),
            total_segments: e.sequencing.iter().map(|b| b.segments).sum(),
            total_monitor_units: e.sequencing.iter().map(|b| b.monitor_units).sum(),
            level_comparison: e.level_comparison.clone(),
            matrix: result.matrix,
            optimizer_iterations: result.optimization.iterations,
            optimizer_stop_reason: format!("{:?}", result.optimization.stop_reason),
        }
    }

    /// Goals on one dose.
    pub fn goals_on(&self, dose: DoseKind) -> impl Iterator<Item = &GoalOutcome> {
        self.goals.iter().filter(move |g| g.dose == dose)
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Writes everything the spec asks for; `clock` gives (seconds in this stage,
/// seconds since the plan started) so the timings include the outputs.
pub(crate) fn write(
    spec: &PlanSpec,
    result: &mut PlanResult,
    clock: impl Fn() -> (f64, f64),
) -> Result<()> {
    let out = spec.resolve(&spec.outputs.dir);
    create_dir(&out)?;
    if spec.outputs.nifti {
        write_niftis(&out, result)?;
    }
    if spec.outputs.dicom {
        write_dicom(&out.join("dicom"), spec, result)?;
    }
    if spec.outputs.report {
        let (stage, total) = clock();
        result.timings_s.insert("outputs".into(), stage);
        result.timings_s.insert("total".into(), total);
        let html = crate::report::html(result);
        let path = out.join("report.html");
        std::fs::write(&path, html).map_err(|e| Error::io(&path, e))?;
    }
    let (stage, total) = clock();
    result.timings_s.insert("outputs".into(), stage);
    result.timings_s.insert("total".into(), total);
    let path = out.join("metrics.json");
    let json = serde_json::to_string_pretty(&Metrics::of(result))
        .map_err(|e| Error::invalid("metrics", e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
}

fn write_niftis(out: &Path, r: &PlanResult) -> Result<()> {
    let nifti = |name: &str, v: &dosepaint_core::Volume<f32>, what: &str| -> Result<()> {
        let options = NiftiWriteOptions {
            description: what.to_string(),
            ..NiftiWriteOptions::default()
        };
        write_nifti(out.join(name), v, &options).map_err(Error::from)
    };
    nifti("ct.nii.gz", &r.ct, "CT (HU) on the dose grid")?;
    nifti(
        "prescription.nii.gz",
        r.prescription.target_gy(),
        "prescribed dose (Gy, course)",
    )?;
    nifti(
        "dose_optimized.nii.gz",
        &r.optimized_dose,
        "optimized dose (Gy, course)",
    )?;
    nifti(
        "dose_delivered.nii.gz",
        &r.delivered_dose,
        "delivered dose (Gy, course)",
    )?;
    let q = dosepaint_eval::q_map(&r.delivered_dose, &r.prescription)?
        .map(|&v| if v.is_finite() { v } else { 0.0 });
    nifti(
        "q_delivered.nii.gz",
        &q,
        "Q = delivered / prescribed (0 outside)",
    )?;
    Ok(())
}

/// Colours for the structures in RTSTRUCT and the report.
pub(crate) fn colour(n: usize) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 10] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
    ];
    PALETTE[n % PALETTE.len()]
}

fn write_dicom(dir: &Path, spec: &PlanSpec, r: &PlanResult) -> Result<PathBuf> {
    create_dir(dir)?;
    let hu = r.ct.map(|&v| v.round().clamp(-1024.0, 3071.0) as i16);
    let series = write_ct_series(dir.join("ct"), &hu, &SeriesWriteOptions::default())?;
    let reference = ReferencedSeries {
        study_uid: series.study_uid.clone(),
        series_uid: series.series_uid.clone(),
        frame_of_reference_uid: series.frame_of_reference_uid.clone(),
        sop_class_uid: series.sop_class_uid.clone(),
        slice_uids: series.slice_uids.clone(),
    };
    let rois: Vec<RoiToWrite<'_>> = r
        .structures
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(n, s)| RoiToWrite {
            structure: s,
            color: colour(n),
            interpreted_type: None,
        })
        .collect();
    let rs_uid = write_rtstruct(
        dir.join("rtstruct.dcm"),
        &reference,
        &rois,
        &RtStructWriteOptions::default(),
    )?;
    let plan_uid = write_rtplan(
        dir.join("rtplan.dcm"),
        &RtPlanToWrite {
            beams: &r.beams,
            sequences: &r.sequencing.sequences(),
            fractions: r.prescription.fractions(),
            mu_per_unit_weight: spec.sequencing.mu_per_unit_weight,
            patient_position: r.position,
            label: spec.name.chars().take(16).collect(),
            machine: "GENERIC_6MV".into(),
            energy_mv: 6.0,
            patient: dosepaint_io::PatientInfo::default(),
            study_uid: Some(series.study_uid.clone()),
            frame_of_reference_uid: Some(series.frame_of_reference_uid.clone()),
            referenced_structure_set_uid: Some(rs_uid),
            syntax: dosepaint_io::WriteSyntax::default(),
        },
    )?;
    write_rtdose(
        dir.join("rtdose.dcm"),
        &r.delivered_dose,
        &RtDoseWriteOptions {
            study_uid: Some(series.study_uid.clone()),
            frame_of_reference_uid: Some(series.frame_of_reference_uid),
            referenced_plan_uid: Some(plan_uid),
            ..RtDoseWriteOptions::default()
        },
    )?;
    Ok(dir.to_path_buf())
}
