//! Evaluation of a plan's optimized and delivered doses.

use dosepaint_core::{
    BeamletLayout, DoseInfluence, Prescription, Structure, StructureRole, Volume,
};
use dosepaint_eval::{
    ClinicalGoal, DoseSample, DoseStatistics, Dvh, GammaParams, Normalization, PaintingAnalysis,
    PaintingParams, PaintingReport, RegionQuality, evaluate_goals,
};
use dosepaint_mlc::{PlanSequencing, SequencerParams};
use dosepaint_radiobio::{AlphaBeta, Lkb, LqParams, PoissonTcp, Weights};
use serde::{Deserialize, Serialize};

use crate::pipeline::find;
use crate::spec::PlanSpec;
use crate::{Error, Result};

/// Which dose a figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseKind {
    /// The optimizer's fluence.
    Optimized,
    /// The sequenced fluence.
    Delivered,
}

/// A cumulative DVH as points (dose Gy, volume %).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DvhCurve {
    /// Structure name.
    pub structure: String,
    /// Which dose.
    pub dose: DoseKind,
    /// (dose Gy, volume %) points.
    pub points: Vec<(f64, f64)>,
}

/// A goal's outcome on one dose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalOutcome {
    /// Goal text.
    pub name: String,
    /// Metric value.
    pub value: f64,
    /// Met or not.
    pub passed: bool,
    /// On which dose.
    pub dose: DoseKind,
}

/// A TCP or NTCP value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probability {
    /// Structure.
    pub structure: String,
    /// Model name.
    pub model: String,
    /// Value for the optimized dose.
    pub optimized: f64,
    /// Value for the delivered dose.
    pub delivered: f64,
}

/// Sequencing figures of one beam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeamSequencingFigures {
    /// Beam index.
    pub beam: usize,
    /// Segments.
    pub segments: usize,
    /// Total monitor units (beamlet-weight units, course).
    pub monitor_units: f64,
}

/// How much sequencing at a given number of levels degrades the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelComparison {
    /// Intensity levels.
    pub levels: u32,
    /// Segments over all beams.
    pub segments: usize,
    /// Quality factor of the delivered dose.
    pub quality_factor: f64,
    /// Target D95 of the delivered dose, Gy.
    pub target_d95_gy: f64,
}

/// Everything the evaluation stage computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// DVHs of both doses.
    pub dvhs: Vec<DvhCurve>,
    /// Statistics per structure of both doses.
    pub statistics: Vec<(DoseKind, DoseStatistics)>,
    /// Clinical goals on both doses.
    pub goals: Vec<GoalOutcome>,
    /// Dose-painting quality of the optimized dose.
    pub painting: PaintingReport,
    /// Dose-painting quality of the delivered dose.
    pub delivered_painting: PaintingReport,
    /// The region the painting quality is judged over.
    pub quality_region: String,
    /// Quality over every prescribed voxel (optimized dose).
    pub whole_prescription: RegionQuality,
    /// Quality over every prescribed voxel (delivered dose).
    pub whole_prescription_delivered: RegionQuality,
    /// QF of an ideal uniform plan at the mean prescribed dose (how hard the
    /// painted prescription is).
    pub uniform_plan_quality_factor: f64,
    /// TCP and NTCP.
    pub probabilities: Vec<Probability>,
    /// Gamma pass rate of the delivered dose against the optimized one.
    pub gamma_pass_rate: f64,
    /// Gamma criteria used.
    pub gamma: GammaParams,
    /// Per-beam sequencing figures.
    pub sequencing: Vec<BeamSequencingFigures>,
    /// Degradation by number of levels.
    pub level_comparison: Vec<LevelComparison>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate(
    spec: &PlanSpec,
    structures: &[Structure],
    boost_structures: &[String],
    rx: &Prescription,
    optimized: &Volume<f32>,
    delivered: &Volume<f32>,
    sequencing: &PlanSequencing,
    layout: &BeamletLayout,
    weights: &[f64],
    influence: &DoseInfluence,
) -> Result<Evaluation> {
    let doses = [
        (DoseKind::Optimized, optimized),
        (DoseKind::Delivered, delivered),
    ];
    let shown: Vec<&Structure> = if spec.evaluation.dvh_structures.is_empty() {
        structures.iter().filter(|s| !s.is_empty()).collect()
    } else {
        spec.evaluation
            .dvh_structures
            .iter()
            .map(|n| find(structures, n))
            .collect::<Result<_>>()?
    };
    let mut dvhs = Vec::new();
    let mut statistics = Vec::new();
    for (kind, dose) in doses {
        for s in &shown {
            let dvh = Dvh::from_structure(dose, s, 0.1)?;
            let edges = dvh.bin_edges_gy();
            let cum = dvh.cumulative_percent();
            let mut points: Vec<(f64, f64)> =
                edges.iter().copied().zip(cum.iter().copied()).collect();
            thin(&mut points);
            dvhs.push(DvhCurve {
                structure: s.name().to_string(),
                dose: kind,
                points,
            });
            let a = if s.role() == StructureRole::Target {
                -10.0
            } else {
                1.0
            };
            statistics.push((kind, DoseStatistics::compute(dose, s, 0.01, Some(a))?));
        }
    }

    let goals_parsed: Vec<ClinicalGoal> = spec
        .goals
        .iter()
        .map(|g| {
            g.parse().map_err(|e: dosepaint_eval::Error| {
                Error::invalid(format!("goal \"{g}\""), e.to_string())
            })
        })
        .collect::<Result<_>>()?;
    let mut goals = Vec::new();
    for (kind, dose) in doses {
        for r in evaluate_goals(&goals_parsed, dose, structures, 0.01)? {
            goals.push(GoalOutcome {
                name: r.name,
                value: r.value,
                passed: r.passed,
                dose: kind,
            });
        }
    }

    let levels: Vec<Structure> = boost_structures
        .iter()
        .map(|n| find(structures, n).cloned())
        .collect::<Result<_>>()?;
    let analysis = PaintingParams::default().check()?;
    let judged = match &spec.evaluation.quality_region {
        Some(name) => restricted(rx, find(structures, name)?)?,
        None => rx.clone(),
    };
    let painting = analysis.evaluate(optimized, &judged, &levels)?;
    let delivered_painting = analysis.evaluate(delivered, &judged, &levels)?;
    let whole = analysis.evaluate(optimized, rx, &[])?.target;
    let whole_delivered = analysis.evaluate(delivered, rx, &[])?.target;
    let uniform_plan_quality_factor =
        uniform_quality_factor(&analysis, &judged, painting.target.mean_prescribed_gy)?;

    let mut probabilities = Vec::new();
    for n in &spec.evaluation.ntcp {
        let s = find(structures, &n.structure)?;
        let model = Lkb::new(n.td50_gy, n.m, n.n)?;
        let value = |d: &Volume<f32>| -> Result<f64> {
            let sample = DoseSample::from_structure(d, s)?;
            Ok(model.ntcp(sample.doses_gy(), Weights::Uniform)?)
        };
        probabilities.push(Probability {
            structure: n.structure.clone(),
            model: format!("LKB NTCP (TD50 {} Gy, m {}, n {})", n.td50_gy, n.m, n.n),
            optimized: value(optimized)?,
            delivered: value(delivered)?,
        });
    }
    for t in &spec.evaluation.tcp {
        let s = find(structures, &t.structure)?;
        let lq = LqParams::from_alpha_and_ratio(t.alpha_per_gy, AlphaBeta::new(t.alpha_beta_gy)?)?;
        let voxel_cm3 = s.grid().voxel_volume_cm3();
        let model = PoissonTcp::uniform(
            s.voxel_count(),
            rx.fractions(),
            lq,
            t.clonogens_per_cm3,
            voxel_cm3,
        )?;
        probabilities.push(Probability {
            structure: t.structure.clone(),
            model: format!(
                "Poisson LQ TCP (alpha {} /Gy, alpha/beta {} Gy, {:.0e} clonogens/cm3)",
                t.alpha_per_gy, t.alpha_beta_gy, t.clonogens_per_cm3
            ),
            optimized: model.tcp(DoseSample::from_structure(optimized, s)?.doses_gy())?,
            delivered: model.tcp(DoseSample::from_structure(delivered, s)?.doses_gy())?,
        });
    }

    let gamma = GammaParams {
        dose_difference_percent: spec.evaluation.gamma_dose_percent,
        distance_to_agreement_mm: spec.evaluation.gamma_dta_mm,
        normalization: Normalization::Global { dose_gy: None },
        ..GammaParams::default()
    };
    let gamma_pass_rate = gamma.check()?.pass_rate(optimized, delivered)?.pass_rate;

    let sequencing_figures = sequencing
        .figures()
        .iter()
        .enumerate()
        .map(|(beam, f)| BeamSequencingFigures {
            beam,
            segments: f.n_segments,
            monitor_units: f.total_mu,
        })
        .collect();

    let target = rx_region(structures, spec)?;
    let mut level_comparison = Vec::new();
    for &l in &spec.sequencing.compare_levels {
        let params: SequencerParams = SequencerParams {
            n_levels: l,
            ..spec.sequencing.sequencer
        };
        let seq = params.check()?.sequence_plan(layout, weights)?;
        let w = seq.delivered_weights(layout, spec.sequencing.transmission)?;
        let dose = influence.dose_volume(&w)?;
        let report = analysis.evaluate(&dose, &judged, &[])?;
        let d95 = Dvh::from_structure(&dose, target, 0.01)?.d95_gy();
        level_comparison.push(LevelComparison {
            levels: l,
            segments: seq.n_segments(),
            quality_factor: report.target.quality_factor,
            target_d95_gy: d95,
        });
    }

    Ok(Evaluation {
        dvhs,
        statistics,
        goals,
        painting,
        delivered_painting,
        quality_region: spec
            .evaluation
            .quality_region
            .clone()
            .unwrap_or_else(|| "prescribed target".into()),
        whole_prescription: whole,
        whole_prescription_delivered: whole_delivered,
        uniform_plan_quality_factor,
        probabilities,
        gamma_pass_rate,
        gamma,
        sequencing: sequencing_figures,
        level_comparison,
    })
}

/// The structure whose D95 the level comparison reports: the prescription's
/// base region (e.g. the PTV), else its target.
fn rx_region<'a>(structures: &'a [Structure], spec: &PlanSpec) -> Result<&'a Structure> {
    find(
        structures,
        spec.prescription
            .base_region
            .as_ref()
            .unwrap_or(&spec.prescription.target),
    )
}

/// The prescription inside `region` only (zero elsewhere).
fn restricted(rx: &Prescription, region: &Structure) -> Result<Prescription> {
    let inside = rx
        .target_gy()
        .zip_map(region.mask(), |&d, &m| if m { d } else { 0.0 })?;
    Ok(Prescription::new(
        inside,
        rx.fractions(),
        rx.provenance().clone(),
    )?)
}

/// QF of the plan that gives every prescribed voxel of `rx` the dose
/// `mean_gy` (the mean prescribed dose): how far a uniform plan is from the
/// painted prescription, by the same QF as the plan's.
fn uniform_quality_factor(
    analysis: &PaintingAnalysis,
    rx: &Prescription,
    mean_gy: f64,
) -> Result<f64> {
    let uniform = rx
        .target_gy()
        .map(|&p| if p > 0.0 { mean_gy as f32 } else { 0.0 });
    Ok(analysis.evaluate(&uniform, rx, &[])?.target.quality_factor)
}

/// Keeps a curve's shape with fewer points: drops interior points of flat runs.
fn thin(points: &mut Vec<(f64, f64)>) {
    if points.len() < 3 {
        return;
    }
    let mut out = Vec::with_capacity(points.len());
    out.push(points[0]);
    for w in points.windows(3) {
        if (w[1].1 - w[0].1).abs() > 1e-9 || (w[2].1 - w[1].1).abs() > 1e-9 {
            out.push(w[1]);
        }
    }
    out.push(points[points.len() - 1]);
    *points = out;
}

#[cfg(test)]
mod tests {
    use dosepaint_core::{Grid, Provenance};

    use super::*;

    /// Half the voxels at 60 Gy, half at 80 Gy: the mean is 70 Gy and
    /// `QF = (|70/60 - 1| + |70/80 - 1|) / 2 = (1/6 + 1/8) / 2 = 7/48`.
    #[test]
    fn uniform_plan_quality_factor_closed_form() {
        let grid = Grid::new([4, 1, 1], [5.0; 3], [0.0; 3]).unwrap();
        let rx = Prescription::new(
            Volume::from_vec(grid, vec![60.0f32, 80.0, 60.0, 80.0]).unwrap(),
            30,
            Provenance::default(),
        )
        .unwrap();
        let analysis = PaintingParams::default().check().unwrap();
        let qf = uniform_quality_factor(&analysis, &rx, 70.0).unwrap();
        // f32 doses: Q carries a relative error of about 1e-7.
        assert!((qf - 7.0 / 48.0).abs() < 1e-6, "{qf}");
        // A uniform prescription: the uniform plan is perfect.
        let flat = Prescription::new(
            rx.target_gy().map(|&p| if p > 0.0 { 70.0 } else { 0.0 }),
            30,
            Provenance::default(),
        )
        .unwrap();
        assert!(
            uniform_quality_factor(&analysis, &flat, 70.0)
                .unwrap()
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn thin_keeps_the_ends_and_every_bend() {
        let mut p = vec![
            (0.0, 100.0),
            (1.0, 100.0),
            (2.0, 100.0),
            (3.0, 50.0),
            (4.0, 0.0),
            (5.0, 0.0),
            (6.0, 0.0),
        ];
        thin(&mut p);
        assert_eq!(
            p,
            vec![
                (0.0, 100.0),
                (2.0, 100.0),
                (3.0, 50.0),
                (4.0, 0.0),
                (6.0, 0.0)
            ]
        );
    }
}
