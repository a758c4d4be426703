//! `Pipeline`: load -> resample -> prescription -> dose-influence matrix ->
//! optimize -> sequence -> delivered dose -> evaluate -> outputs.

use std::collections::BTreeMap;
use std::time::Instant;

use dosepaint_biomap::{DoseMapping, MappingInputs};
use dosepaint_core::{
    Beam, BeamletLayout, DoseInfluence, Grid, Interpolation, PatientPosition, Prescription,
    Structure, StructureRole, Volume,
};
use dosepaint_dose::{
    BeamletGridSpec, DoseEngine, DoseRows, HuDensityCurve, Machine, PatientModel, PencilBeamEngine,
    PencilBeamOptions, beamlet_layout,
};
use dosepaint_mlc::PlanSequencing;
use dosepaint_optim::{
    Deviation, DoseLimits, DoseVolume, FluenceProblem, FluenceSmoothness, IterationInfo, MaxDose,
    MeanDose, OptimizationResult, Sense, SquaredDeviation, optimize,
};
use serde::{Deserialize, Serialize};

use crate::evaluate::{Evaluation, evaluate};
use crate::spec::{InputSpec, Isocenter, ObjectiveSpec, PhantomCase, PlanSpec};
use crate::{Error, Result};

/// The stages of a plan, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Read the CT, structures and images.
    Load,
    /// Bring everything onto the dose grid.
    Resample,
    /// Images -> voxel-wise prescription.
    Prescription,
    /// The dose-influence matrix.
    DoseMatrix,
    /// Fluence optimization.
    Optimize,
    /// Leaf sequencing.
    Sequence,
    /// Dose of the sequenced (deliverable) fluence.
    DeliveredDose,
    /// DVHs, goals, Q/QVH, TCP/NTCP, gamma.
    Evaluate,
    /// Files.
    Outputs,
}

impl Stage {
    /// Every stage in order.
    pub const ALL: [Stage; 9] = [
        Stage::Load,
        Stage::Resample,
        Stage::Prescription,
        Stage::DoseMatrix,
        Stage::Optimize,
        Stage::Sequence,
        Stage::DeliveredDose,
        Stage::Evaluate,
        Stage::Outputs,
    ];

    /// Snake-case name (the key in `metrics.json`'s `timings_s`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Load => "load",
            Stage::Resample => "resample",
            Stage::Prescription => "prescription",
            Stage::DoseMatrix => "dose_matrix",
            Stage::Optimize => "optimize",
            Stage::Sequence => "sequence",
            Stage::DeliveredDose => "delivered_dose",
            Stage::Evaluate => "evaluate",
            Stage::Outputs => "outputs",
        }
    }
}

/// What the progress callback hears.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A stage began.
    Started(Stage),
    /// A stage ended after this many seconds.
    Finished(Stage, f64),
    /// An optimizer iteration.
    Iteration(&'a IterationInfo<'a>),
}

/// The patient as loaded: CT, structures and functional images on the CT grid.
#[derive(Debug, Clone)]
pub struct Patient {
    /// CT in HU.
    pub ct: Volume<f32>,
    /// Patient position.
    pub position: PatientPosition,
    /// Structures on the CT grid.
    pub structures: Vec<Structure>,
    /// Functional images by name, on the CT grid.
    pub images: BTreeMap<String, Volume<f32>>,
}

/// Everything a plan produced.
#[derive(Debug, Clone)]
pub struct PlanResult {
    /// Plan name.
    pub name: String,
    /// CT resampled onto the dose grid (HU), for display and NIfTI output.
    pub ct: Volume<f32>,
    /// Patient position.
    pub position: PatientPosition,
    /// Structures on the dose grid (including the mapping's boost subvolumes).
    pub structures: Vec<Structure>,
    /// Names of the boost subvolumes the mapping produced.
    pub boost_structures: Vec<String>,
    /// The painted prescription.
    pub prescription: Prescription,
    /// The beams.
    pub beams: Vec<Beam>,
    /// The beamlet layout.
    pub layout: BeamletLayout,
    /// Optimizer outcome (weights before normalisation).
    pub optimization: OptimizationResult,
    /// Beamlet weights of the plan (after normalisation, if asked).
    pub weights: Vec<f64>,
    /// Leaf sequences and figures.
    pub sequencing: PlanSequencing,
    /// Beamlet weights that the sequences deliver.
    pub delivered_weights: Vec<f64>,
    /// Dose of the optimized fluence.
    pub optimized_dose: Volume<f32>,
    /// Dose of the sequenced fluence.
    pub delivered_dose: Volume<f32>,
    /// Dose-influence matrix figures.
    pub matrix: MatrixFigures,
    /// Evaluation of both doses.
    pub evaluation: Evaluation,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
}

/// Size of the dose-influence matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MatrixFigures {
    /// Rows (voxels).
    pub rows: usize,
    /// Beamlets.
    pub beamlets: usize,
    /// Non-zeros.
    pub nnz: usize,
    /// Bytes.
    pub bytes: usize,
}

/// Runs plans; holds optional user plug-ins (a dose engine, a mapping).
#[derive(Default)]
pub struct Pipeline {
    engine: Option<Box<dyn DoseEngine>>,
    mapping: Option<Box<dyn DoseMapping>>,
}

impl Pipeline {
    /// A pipeline with the built-in engine and the spec's mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses another dose engine (e.g. a Monte Carlo engine or imported matrices).
    #[must_use]
    pub fn with_engine(mut self, engine: Box<dyn DoseEngine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Uses another prescription mapping instead of the spec's.
    #[must_use]
    pub fn with_mapping(mut self, mapping: Box<dyn DoseMapping>) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// Runs the whole plan, writing the outputs the spec asks for.
    ///
    /// # Errors
    /// The first stage that fails, with its cause; a normalisation dose
    /// that is not positive and finite before any stage runs.
    pub fn run(
        &self,
        spec: &PlanSpec,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<PlanResult> {
        let t_total = Instant::now();
        // Before any work: a bad normalisation would otherwise surface
        // only after the optimization.
        if let Some(norm) = &spec.normalize
            && !(norm.dose_gy.is_finite() && norm.dose_gy > 0.0)
        {
            return Err(Error::invalid(
                "normalisation",
                format!(
                    "dose_gy = {} for D{} of \"{}\": it must be positive and finite",
                    norm.dose_gy, norm.volume_percent, norm.structure
                ),
            ));
        }
        let mut timings = BTreeMap::new();
        let stage = |s: Stage,
                     timings: &mut BTreeMap<String, f64>,
                     t0: Instant,
                     progress: &mut dyn FnMut(Progress<'_>)| {
            let secs = t0.elapsed().as_secs_f64();
            timings.insert(s.name().to_string(), secs);
            progress(Progress::Finished(s, secs));
        };

        progress(Progress::Started(Stage::Load));
        let t0 = Instant::now();
        let patient = load(spec)?;
        stage(Stage::Load, &mut timings, t0, progress);

        progress(Progress::Started(Stage::Resample));
        let t0 = Instant::now();
        let dose_grid = patient
            .ct
            .grid()
            .resampled_to_spacing(spec.dose.grid_spacing_mm)?;
        let ct_on_dose = patient
            .ct
            .resample(&dose_grid, Interpolation::Linear, -1000.0);
        let mut structures: Vec<Structure> = patient
            .structures
            .iter()
            .map(|s| s.resample(&dose_grid))
            .collect();
        let images: BTreeMap<String, Volume<f32>> = patient
            .images
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.resample(&dose_grid, Interpolation::Linear, 0.0),
                )
            })
            .collect();
        stage(Stage::Resample, &mut timings, t0, progress);

        progress(Progress::Started(Stage::Prescription));
        let t0 = Instant::now();
        let rx_spec = &spec.prescription;
        let mut inputs = MappingInputs::new(
            find(&structures, &rx_spec.target)?.clone(),
            rx_spec.fractions,
        )?;
        if let Some(base) = &rx_spec.base_region {
            inputs = inputs.with_base_region(find(&structures, base)?.clone())?;
        }
        for name in &rx_spec.regions {
            inputs = inputs.with_region(name.clone(), find(&structures, name)?.clone())?;
        }
        for (name, image) in &images {
            inputs = inputs.with_image(name.clone(), image.clone())?;
        }
        let mapped = match &self.mapping {
            Some(m) => m.map_with_report(&inputs)?,
            None => rx_spec.mapping.build()?.map_with_report(&inputs)?,
        };
        let prescription = mapped.prescription;
        let mut boost_structures = Vec::new();
        for s in mapped.report.structures {
            boost_structures.push(s.name().to_string());
            structures.push(s);
        }
        stage(Stage::Prescription, &mut timings, t0, progress);

        progress(Progress::Started(Stage::DoseMatrix));
        let t0 = Instant::now();
        let model =
            PatientModel::from_ct(&patient.ct, &HuDensityCurve::default(), patient.position)?;
        let rows = dose_rows(&dose_grid, &model, spec.dose.min_density, &structures)?;
        let beams = build_beams(spec, &patient)?;
        let targets: Vec<&Structure> = spec
            .beams
            .targets
            .iter()
            .map(|n| find(&patient.structures, n))
            .collect::<Result<_>>()?;
        let layout = beamlet_layout(
            &beams,
            patient.position,
            &targets,
            &BeamletGridSpec::square(spec.beams.bixel_width_mm),
        )?;
        let default_engine;
        let engine: &dyn DoseEngine = if let Some(e) = &self.engine {
            e.as_ref()
        } else {
            let machine = match &spec.dose.machine {
                Some(path) => {
                    let path = spec.resolve(path);
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    Machine::from_json(&text)?
                }
                None => Machine::generic_6mv(),
            };
            default_engine = PencilBeamEngine::new(machine, PencilBeamOptions::default())?;
            &default_engine
        };
        let influence = engine.influence(&model, &rows, &beams, &layout)?;
        let matrix = MatrixFigures {
            rows: influence.n_rows(),
            beamlets: influence.n_beamlets(),
            nnz: influence.nnz(),
            bytes: influence.memory_bytes(),
        };
        stage(Stage::DoseMatrix, &mut timings, t0, progress);

        progress(Progress::Started(Stage::Optimize));
        let t0 = Instant::now();
        let mut problem = FluenceProblem::new(&influence)?;
        add_objectives(&mut problem, spec, &influence, &structures, &prescription)?;
        let optimization = optimize(&mut problem, &spec.optimizer, &mut |info| {
            progress(Progress::Iteration(info));
        })?;
        let mut weights = optimization.weights.clone();
        if let Some(norm) = &spec.normalize {
            let dose = influence.dose_volume(&weights)?;
            let s = find(&structures, &norm.structure)?;
            let dvh = dosepaint_eval::Dvh::from_structure(&dose, s, 0.01)?;
            let current = dvh.dose_at_volume_percent(norm.volume_percent)?;
            if current <= 0.0 {
                return Err(Error::invalid(
                    "normalisation",
                    format!(
                        "D{} of \"{}\" is 0 Gy: nothing to scale",
                        norm.volume_percent, norm.structure
                    ),
                ));
            }
            let factor = norm.dose_gy / current;
            for w in &mut weights {
                *w *= factor;
            }
        }
        drop(problem);
        stage(Stage::Optimize, &mut timings, t0, progress);

        progress(Progress::Started(Stage::Sequence));
        let t0 = Instant::now();
        let sequencer = spec.sequencing.sequencer.check()?;
        let sequencing = sequencer.sequence_plan(&layout, &weights)?;
        let delivered_weights =
            sequencing.delivered_weights(&layout, spec.sequencing.transmission)?;
        stage(Stage::Sequence, &mut timings, t0, progress);

        progress(Progress::Started(Stage::DeliveredDose));
        let t0 = Instant::now();
        let optimized_dose = influence.dose_volume(&weights)?;
        let delivered_dose = influence.dose_volume(&delivered_weights)?;
        stage(Stage::DeliveredDose, &mut timings, t0, progress);

        progress(Progress::Started(Stage::Evaluate));
        let t0 = Instant::now();
        let evaluation = evaluate(
            spec,
            &structures,
            &boost_structures,
            &prescription,
            &optimized_dose,
            &delivered_dose,
            &sequencing,
            &layout,
            &weights,
            &influence,
        )?;
        stage(Stage::Evaluate, &mut timings, t0, progress);

        let mut result = PlanResult {
            name: spec.name.clone(),
            ct: ct_on_dose,
            position: patient.position,
            structures,
            boost_structures,
            prescription,
            beams,
            layout,
            optimization,
            weights,
            sequencing,
            delivered_weights,
            optimized_dose,
            delivered_dose,
            matrix,
            evaluation,
            timings_s: timings,
        };

        progress(Progress::Started(Stage::Outputs));
        let t0 = Instant::now();
        // Outputs record their own time and the total, so they come last.
        let outputs_start = t0;
        result
            .timings_s
            .insert(Stage::Outputs.name().to_string(), 0.0);
        result
            .timings_s
            .insert("total".to_string(), t_total.elapsed().as_secs_f64());
        crate::outputs::write(spec, &mut result, || {
            (
                outputs_start.elapsed().as_secs_f64(),
                t_total.elapsed().as_secs_f64(),
            )
        })?;
        let secs = t0.elapsed().as_secs_f64();
        progress(Progress::Finished(Stage::Outputs, secs));
        Ok(result)
    }
}

/// Finds a structure by name, or says which names exist.
pub(crate) fn find<'a>(structures: &'a [Structure], name: &str) -> Result<&'a Structure> {
    structures
        .iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| Error::UnknownStructure {
            name: name.to_string(),
            available: structures
                .iter()
                .map(Structure::name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Loads the patient the spec names.
///
/// # Errors
/// Missing files, unreadable formats, images on grids that do not overlap.
pub fn load(spec: &PlanSpec) -> Result<Patient> {
    match &spec.inputs {
        InputSpec::Phantom { case, spacing_mm } => {
            let p = match (case, spacing_mm) {
                (PhantomCase::HeadNeck, None) => dosepaint_phantom::head_neck()?,
                (PhantomCase::HeadNeck, Some(s)) => dosepaint_phantom::head_neck_with_spacing(*s)?,
                (PhantomCase::Tg119, None) => dosepaint_phantom::tg119()?,
                (PhantomCase::Tg119, Some(s)) => dosepaint_phantom::tg119_with_spacing(*s)?,
                (PhantomCase::Box, spacing) => {
                    let mut params = dosepaint_phantom::WaterBoxParams::default();
                    if let Some(s) = spacing {
                        params.spacing_mm = *s;
                    }
                    dosepaint_phantom::water_box(&params)?
                }
            };
            let mut images = BTreeMap::new();
            for kind in p.images.kinds() {
                let name = match kind {
                    dosepaint_phantom::ImageKind::FdgSuv => "fdg",
                    dosepaint_phantom::ImageKind::FmisoTbr => "fmiso",
                    dosepaint_phantom::ImageKind::FltSuv => "flt",
                    dosepaint_phantom::ImageKind::Adc => "adc",
                    _ => continue,
                };
                images.insert(name.to_string(), p.image(kind)?.clone());
            }
            Ok(Patient {
                ct: p.ct,
                position: p.position,
                structures: p.structures,
                images,
            })
        }
        InputSpec::Files {
            ct,
            structures,
            images,
        } => {
            let (ct, position) = crate::files::read_image(spec, ct)?;
            let structure_list = crate::files::read_structures(spec, structures, ct.grid())?;
            let mut loaded = BTreeMap::new();
            for (name, file) in images {
                let (image, _) = crate::files::read_image(spec, file)?;
                let on_ct = crate::files::onto_grid(&image, ct.grid(), name)?;
                loaded.insert(name.clone(), on_ct);
            }
            Ok(Patient {
                ct,
                position,
                structures: structure_list,
                images: loaded,
            })
        }
    }
}

/// Rows of the matrix: every voxel inside the patient, plus every voxel of a
/// structure (a target may reach into an air cavity; its voxels still need a
/// dose, or their Q would read 0).
fn dose_rows(
    grid: &Grid,
    model: &PatientModel,
    min_density: f64,
    structures: &[Structure],
) -> Result<DoseRows> {
    let patient = DoseRows::inside_patient(grid.clone(), model, min_density)?;
    let mut inside = vec![false; grid.n_voxels()];
    for &v in patient.voxels() {
        inside[v as usize] = true;
    }
    for s in structures {
        for (flag, &m) in inside.iter_mut().zip(s.mask().as_slice()) {
            *flag |= m;
        }
    }
    let voxels = (0..grid.n_voxels() as u32)
        .filter(|&v| inside[v as usize])
        .collect();
    Ok(DoseRows::new(grid.clone(), voxels)?)
}

fn centroid(s: &Structure) -> Result<[f64; 3]> {
    s.ensure_not_empty("an isocentre at its centroid")?;
    Ok(s.centroid_mm()
        .expect("a non-empty structure has a centroid"))
}

fn build_beams(spec: &PlanSpec, patient: &Patient) -> Result<Vec<Beam>> {
    if spec.beams.gantry_deg.is_empty() {
        return Err(Error::invalid("beams", "no gantry angle given"));
    }
    let iso = match &spec.beams.isocenter {
        Isocenter::Point(p) => *p,
        Isocenter::CentroidOf(name) => centroid(find(&patient.structures, name)?)?,
    };
    spec.beams
        .gantry_deg
        .iter()
        .map(|&g| {
            Beam::new(
                format!("G{g:03.0}"),
                g,
                spec.beams.couch_deg,
                spec.beams.collimator_deg,
                iso,
            )
            .map_err(Error::from)
        })
        .collect()
}

fn add_objectives(
    problem: &mut FluenceProblem<'_>,
    spec: &PlanSpec,
    influence: &DoseInfluence,
    structures: &[Structure],
    rx: &Prescription,
) -> Result<()> {
    let target_name = spec
        .prescription
        .base_region
        .as_ref()
        .unwrap_or(&spec.prescription.target);
    for objective in &spec.objectives {
        match objective {
            ObjectiveSpec::Prescription {
                structure,
                weight,
                relative,
            } => {
                let s = find(structures, structure.as_ref().unwrap_or(target_name))?;
                let deviation = if *relative {
                    Deviation::Relative
                } else {
                    Deviation::Absolute
                };
                problem.add_objective(
                    *weight,
                    SquaredDeviation::to_prescription(influence, s, rx, deviation)?,
                )?;
            }
            ObjectiveSpec::PrescriptionWindow {
                structure,
                weight,
                under,
                over,
                cold_weight,
                hot_weight,
            } => {
                let s = find(structures, structure.as_ref().unwrap_or(target_name))?;
                let limits =
                    DoseLimits::around_prescription(influence, s, rx, Some(*under), Some(*over))?
                        .with_side_weights(*cold_weight, *hot_weight)?;
                problem.add_objective(*weight, limits)?;
            }
            ObjectiveSpec::Uniform {
                structure,
                dose_gy,
                weight,
            } => {
                let s = find(structures, structure)?;
                problem
                    .add_objective(*weight, SquaredDeviation::uniform(influence, s, *dose_gy)?)?;
            }
            ObjectiveSpec::Overdose {
                structure,
                limit_gy,
                weight,
            } => {
                let s = find(structures, structure)?;
                problem.add_objective(*weight, DoseLimits::overdose(influence, s, *limit_gy)?)?;
            }
            ObjectiveSpec::Underdose {
                structure,
                limit_gy,
                weight,
            } => {
                let s = find(structures, structure)?;
                problem.add_objective(*weight, DoseLimits::underdose(influence, s, *limit_gy)?)?;
            }
            ObjectiveSpec::MaxDose {
                structure,
                limit_gy,
                weight,
            } => {
                let s = find(structures, structure)?;
                problem.add_objective(*weight, MaxDose::new(influence, s, *limit_gy)?)?;
            }
            ObjectiveSpec::MeanDose {
                structure,
                limit_gy,
                weight,
            } => {
                let s = find(structures, structure)?;
                problem.add_objective(
                    *weight,
                    MeanDose::new(influence, s, Sense::AtMost, *limit_gy)?,
                )?;
            }
            ObjectiveSpec::DoseVolume {
                structure,
                dose_gy,
                max_volume_percent,
                weight,
            } => {
                let s = find(structures, structure)?;
                problem.add_objective(
                    *weight,
                    DoseVolume::new(
                        influence,
                        s,
                        Sense::AtMost,
                        *dose_gy,
                        max_volume_percent / 100.0,
                    )?,
                )?;
            }
            ObjectiveSpec::Ring {
                around,
                inner_mm,
                limit_gy,
                weight,
            } => {
                let Some((first, rest)) = around.split_first() else {
                    return Err(Error::invalid(
                        "ring objective",
                        "`around` names no structure to draw the ring around",
                    ));
                };
                let mut targets = find(structures, first)?.clone();
                for name in rest {
                    targets = targets.union(find(structures, name)?)?;
                }
                let grown = targets.dilate([*inner_mm; 3])?;
                let everything = Structure::new(
                    "dose grid",
                    StructureRole::Other,
                    Volume::filled(influence.grid().clone(), true),
                )?;
                let ring = everything
                    .difference(&grown)?
                    .renamed(format!("ring {inner_mm} mm"));
                problem
                    .add_objective(*weight, DoseLimits::overdose(influence, &ring, *limit_gy)?)?;
            }
            ObjectiveSpec::Smoothness { weight } => {
                problem
                    .add_fluence_objective(*weight, FluenceSmoothness::new(influence.layout())?)?;
            }
        }
    }
    Ok(())
}

/// Whether two grids overlap at all (for a clear error before resampling).
pub(crate) fn overlaps(a: &Grid, b: &Grid) -> bool {
    let (alo, ahi) = a.bounding_box_mm();
    let (blo, bhi) = b.bounding_box_mm();
    (0..3).all(|c| alo[c] < bhi[c] && blo[c] < ahi[c])
}
