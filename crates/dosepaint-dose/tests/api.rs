//! Geometry (IEC 61217), beamlet grids, bad input, the engine traits, the
//! machine file and commissioning.

use std::ops::Range;

use dosepaint_core::{
    Beam, BeamletLayout, DoseInfluence, Grid, PatientPosition, Structure, StructureRole, Volume,
};
use dosepaint_dose::{
    BeamletColumn, BeamletGridSpec, CommissioningData, DoseEngine, DoseRows, Error, Field,
    FitOptions, FitParameter, HuDensityCurve, Machine, MeasuredPdd, MeasuredProfile, PatientModel,
    PencilBeamEngine, PencilBeamOptions, PreparedBeam, beamlet_layout, commission,
    open_field_layout,
};
use proptest::prelude::*;

fn water_cube(half_mm: f64, spacing: f64) -> (Grid, PatientModel) {
    let n = (2.0 * half_mm / spacing).round() as usize;
    let o = -half_mm + 0.5 * spacing;
    let grid = Grid::new([n, n, n], [spacing; 3], [o; 3]).unwrap();
    let p = PatientModel::from_density(Volume::filled(grid.clone(), 1.0), PatientPosition::HFS)
        .unwrap();
    (grid, p)
}

fn sphere(grid: &Grid, c: [f64; 3], r: f64) -> Structure {
    let g = grid.clone();
    Structure::new(
        "PTV",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), move |v| {
            let p = g.voxel_center(v);
            (0..3).map(|a| (p[a] - c[a]).powi(2)).sum::<f64>() <= r * r
        }),
    )
    .unwrap()
}

/// The pencil-beam engine with the generic 6 MV machine and default options.
fn default_engine() -> PencilBeamEngine {
    PencilBeamEngine::new(Machine::generic_6mv(), PencilBeamOptions::default()).unwrap()
}

/// Coplanar beams named `G<angle>` at the given gantry angles, isocentre at
/// the origin.
fn gantry_beams(angles: &[f64]) -> Vec<Beam> {
    angles
        .iter()
        .map(|&g| Beam::new(format!("G{g}"), g, 0.0, 0.0, [0.0; 3]).unwrap())
        .collect()
}

/// The beamlet layout of `beams` over `target` for a head-first supine patient.
fn hfs_layout(
    beams: &[Beam],
    target: &Structure,
    spec: &BeamletGridSpec,
) -> Result<BeamletLayout, Error> {
    beamlet_layout(beams, PatientPosition::HFS, &[target], spec)
}

fn close(a: [f64; 3], b: [f64; 3]) -> bool {
    (0..3).all(|c| (a[c] - b[c]).abs() < 1e-9)
}

#[test]
fn iec61217_gantry_directions_for_each_recumbent_position() {
    // IEC 61217 / DICOM: HFS gantry 0 enters from anterior (source at -y in
    // LPS), gantry 90 puts the source on the patient's left (+x), 180
    // posterior, 270 right. Prone flips anterior/posterior and left/right;
    // feet-first flips left/right.
    let iso = [10.0, -20.0, 30.0];
    let src = |pos, g: f64| {
        let s = Beam::new("b", g, 0.0, 0.0, iso)
            .unwrap()
            .geometry(pos)
            .unwrap()
            .source_mm;
        [s[0] - iso[0], s[1] - iso[1], s[2] - iso[2]]
    };
    use PatientPosition::{FFP, FFS, HFP, HFS};
    assert!(close(src(HFS, 0.0), [0.0, -1000.0, 0.0]));
    assert!(close(src(HFS, 90.0), [1000.0, 0.0, 0.0]));
    assert!(close(src(HFS, 180.0), [0.0, 1000.0, 0.0]));
    assert!(close(src(HFS, 270.0), [-1000.0, 0.0, 0.0]));
    // Prone: the ceiling side is the patient's back; gantry 90 is on the patient's right.
    assert!(close(src(HFP, 0.0), [0.0, 1000.0, 0.0]));
    assert!(close(src(HFP, 90.0), [-1000.0, 0.0, 0.0]));
    // Feet first supine: gantry 90 (the observer's right facing the gantry) is the patient's right.
    assert!(close(src(FFS, 0.0), [0.0, -1000.0, 0.0]));
    assert!(close(src(FFS, 90.0), [-1000.0, 0.0, 0.0]));
    assert!(close(src(FFP, 90.0), [1000.0, 0.0, 0.0]));
    // The axis points from the source to the isocentre.
    let g = Beam::new("b", 90.0, 0.0, 0.0, iso)
        .unwrap()
        .geometry(HFS)
        .unwrap();
    assert!(close(g.axis, [-1.0, 0.0, 0.0]));
}

#[test]
fn iec61217_couch_and_collimator_directions() {
    use PatientPosition::HFS;
    let iso = [0.0; 3];
    // Couch 90 (counter-clockwise seen from above) turns the head (towards
    // the gantry at couch 0) to the observer's left: a gantry-90 source then
    // sits at the patient's feet (-z in LPS).
    let g = Beam::new("b", 90.0, 90.0, 0.0, iso)
        .unwrap()
        .geometry(HFS)
        .unwrap();
    assert!(close(g.source_mm, [0.0, 0.0, -1000.0]), "{:?}", g.source_mm);
    // Couch 270: the source at the head (+z).
    let g = Beam::new("b", 90.0, 270.0, 0.0, iso)
        .unwrap()
        .geometry(HFS)
        .unwrap();
    assert!(close(g.source_mm, [0.0, 0.0, 1000.0]));
    // A couch rotation leaves a gantry-0 beam vertical.
    let g = Beam::new("b", 0.0, 45.0, 0.0, iso)
        .unwrap()
        .geometry(HFS)
        .unwrap();
    assert!(close(g.source_mm, [0.0, -1000.0, 0.0]));
    // Collimator 0, gantry 0, HFS: leaves travel along patient x (IEC X_b =
    // X_f = patient left), leaf pairs stack along the head-foot axis (Y_b =
    // towards the gantry = superior, +z).
    let g = Beam::new("b", 0.0, 0.0, 0.0, iso)
        .unwrap()
        .geometry(HFS)
        .unwrap();
    assert!(close(g.bev_x, [1.0, 0.0, 0.0]) && close(g.bev_y, [0.0, 0.0, 1.0]));
    // Collimator 90 (counter-clockwise seen from the source): X_b turns to Y_f.
    let g = Beam::new("b", 0.0, 0.0, 90.0, iso)
        .unwrap()
        .geometry(HFS)
        .unwrap();
    assert!(close(g.bev_x, [0.0, 0.0, 1.0]), "{:?}", g.bev_x);
    assert!(close(g.bev_y, [-1.0, 0.0, 0.0]), "{:?}", g.bev_y);
    // BEV axes stay orthonormal and right-handed with the axis towards the source.
    let g = Beam::new("b", 33.0, 71.0, 12.0, iso)
        .unwrap()
        .geometry(HFS)
        .unwrap();
    let (x, y, a) = (g.bev_x, g.bev_y, g.axis);
    let cross = [
        x[1] * y[2] - x[2] * y[1],
        x[2] * y[0] - x[0] * y[2],
        x[0] * y[1] - x[1] * y[0],
    ];
    assert!(close(cross, [-a[0], -a[1], -a[2]]));
}

#[test]
fn dose_follows_the_beam_direction_in_the_patient() {
    // A gantry-90 beam on a water cube enters at the patient's left (+x):
    // the dose 15 mm inside the left face beats the dose 15 mm inside the right face.
    let (grid, patient) = water_cube(60.0, 4.0);
    let beams = vec![Beam::new("G90", 90.0, 0.0, 0.0, [0.0; 3]).unwrap()];
    let layout = open_field_layout(40.0, 40.0, 5.0, 5.0).unwrap();
    let rows = DoseRows::all(grid.clone()).unwrap();
    let engine = default_engine();
    let d = engine.influence(&patient, &rows, &beams, &layout).unwrap();
    let dose = d.dose_volume(&vec![1.0; layout.len()]).unwrap();
    let at = |x: f64| {
        let v = grid.nearest_voxel([x, 2.0, 2.0]).unwrap();
        dose[v]
    };
    assert!(at(46.0) > 1.4 * at(-46.0), "{} vs {}", at(46.0), at(-46.0));
}

#[test]
fn decubitus_positions_are_refused() {
    let grid = Grid::new([4, 4, 4], [2.0; 3], [0.0; 3]).unwrap();
    for pos in [
        PatientPosition::HFDR,
        PatientPosition::HFDL,
        PatientPosition::FFDR,
        PatientPosition::FFDL,
    ] {
        let e = PatientModel::from_density(Volume::filled(grid.clone(), 1.0), pos).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        let t = sphere(&grid, [3.0; 3], 3.0);
        let beams = vec![Beam::new("b", 0.0, 0.0, 0.0, [3.0; 3]).unwrap()];
        assert!(beamlet_layout(&beams, pos, &[&t], &BeamletGridSpec::default()).is_err());
    }
}

#[test]
fn beamlet_grid_covers_the_target_projection_on_leaf_rows() {
    let (grid, _) = water_cube(60.0, 2.0);
    let ptv = sphere(&grid, [0.0; 3], 20.0);
    let beams = gantry_beams(&[0.0, 90.0]);
    let spec = BeamletGridSpec {
        margin_mm: 0.0,
        ..BeamletGridSpec::square(5.0)
    };
    let layout = hfs_layout(&beams, &ptv, &spec).unwrap();
    for b in 0..2 {
        let g = layout.beam_grids()[b];
        // A sphere of radius 20 mm projects to a disc of about 20.4 to 21 mm
        // radius (divergence and voxel extent): 10 bixels of 5 mm across.
        assert_eq!((g.n_rows, g.n_cols), (10, 10), "beam {b}");
        // Bixel edges on multiples of 5 mm (the axis is an edge).
        assert!(((g.x0_mm - 2.5) / 5.0).fract().abs() < 1e-9);
        // Corner bixels are outside the disc, the centre ones inside.
        assert!(layout.index_of(b, 0, 0).is_none());
        assert!(layout.index_of(b, 5, 5).is_some() && layout.index_of(b, 4, 4).is_some());
    }
    // A margin adds a ring of bixels.
    let wide = hfs_layout(&beams, &ptv, &BeamletGridSpec::square(5.0)).unwrap();
    assert!(wide.len() > layout.len());
}

#[test]
fn bad_input_gives_clear_errors() {
    let (grid, patient) = water_cube(40.0, 4.0);
    let ptv = sphere(&grid, [0.0; 3], 10.0);
    let beams = vec![Beam::new("AP", 0.0, 0.0, 0.0, [0.0; 3]).unwrap()];
    // Zero bixel width.
    let spec = BeamletGridSpec {
        bixel_width_mm: 0.0,
        ..BeamletGridSpec::default()
    };
    let e = hfs_layout(&beams, &ptv, &spec).unwrap_err();
    assert!(e.to_string().contains("bixel width"), "{e}");
    // Empty target.
    let empty = Structure::new(
        "GTV",
        StructureRole::Target,
        Volume::filled(grid.clone(), false),
    )
    .unwrap();
    let e = hfs_layout(&beams, &empty, &BeamletGridSpec::default()).unwrap_err();
    assert!(
        matches!(e, Error::Empty { .. }) && e.to_string().contains("GTV"),
        "{e}"
    );
    // NaN HU names the voxel.
    let mut ct = Volume::filled(grid.clone(), 0.0f32);
    ct[[1, 2, 3]] = f32::NAN;
    let e =
        PatientModel::from_ct(&ct, &HuDensityCurve::default(), PatientPosition::HFS).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NonFinite {
                voxel: [1, 2, 3],
                ..
            }
        ),
        "{e}"
    );
    // Isocentre outside the CT.
    let layout = open_field_layout(20.0, 20.0, 5.0, 5.0).unwrap();
    let rows = DoseRows::all(grid.clone()).unwrap();
    let engine = default_engine();
    let far = vec![Beam::new("far", 0.0, 0.0, 0.0, [500.0, 0.0, 0.0]).unwrap()];
    let e = engine
        .influence(&patient, &rows, &far, &layout)
        .unwrap_err();
    assert!(matches!(e, Error::IsocenterOutside { .. }), "{e}");
    // A beam that misses the patient: water only in one corner, the field
    // (plus cut-off) on air.
    let g2 = grid.clone();
    let corner = Volume::from_fn(grid.clone(), move |v| {
        let p = g2.voxel_center(v);
        if p[0] > 30.0 && p[2] > 30.0 {
            1.0f32
        } else {
            0.0
        }
    });
    let corner = PatientModel::from_density(corner, PatientPosition::HFS).unwrap();
    let rows_in = DoseRows::inside_patient(grid.clone(), &corner, 0.5).unwrap();
    let small = open_field_layout(10.0, 10.0, 5.0, 5.0).unwrap();
    let opts = PencilBeamOptions {
        lateral_cutoff_mm: 10.0,
        ..PencilBeamOptions::default()
    };
    let e = PencilBeamEngine::new(Machine::generic_6mv(), opts)
        .unwrap()
        .influence(&corner, &rows_in, &beams, &small)
        .unwrap_err();
    assert!(matches!(e, Error::BeamMissesPatient { .. }), "{e}");
    // Beams and layout disagree.
    let two = vec![beams[0].clone(), beams[0].clone()];
    assert!(engine.influence(&patient, &rows, &two, &layout).is_err());
    // A beam at another SAD than the machine.
    let sad = vec![beams[0].clone().with_sad_mm(800.0).unwrap()];
    assert!(
        engine
            .influence(&patient, &rows, &sad, &layout)
            .unwrap_err()
            .to_string()
            .contains("SAD")
    );
    // Options out of range.
    for bad in [
        PencilBeamOptions {
            lateral_cutoff_mm: 0.0,
            ..PencilBeamOptions::default()
        },
        PencilBeamOptions {
            lateral_cutoff_mm: f64::NAN,
            ..PencilBeamOptions::default()
        },
        PencilBeamOptions {
            relative_threshold: 1.0,
            ..PencilBeamOptions::default()
        },
        PencilBeamOptions {
            ray_spacing_mm: Some(-1.0),
            ..PencilBeamOptions::default()
        },
        PencilBeamOptions {
            surface_density: f64::NAN,
            ..PencilBeamOptions::default()
        },
    ] {
        assert!(PencilBeamEngine::new(Machine::generic_6mv(), bad).is_err());
    }
    // Bad calibration curves.
    assert!(HuDensityCurve::new(vec![(0.0, 1.0)]).is_err());
    assert!(HuDensityCurve::new(vec![(0.0, 1.0), (0.0, 2.0)]).is_err());
    assert!(HuDensityCurve::new(vec![(0.0, 1.0), (100.0, 0.5)]).is_err());
    assert!(HuDensityCurve::new(vec![(0.0, -1.0), (100.0, 0.5)]).is_err());
    assert!(HuDensityCurve::new(vec![(f64::NAN, 1.0), (100.0, 1.5)]).is_err());
    // Negative density.
    let mut d = Volume::filled(grid.clone(), 1.0f32);
    d[[0, 0, 0]] = -0.1;
    assert!(PatientModel::from_density(d, PatientPosition::HFS).is_err());
    // Empty rows.
    assert!(DoseRows::new(grid.clone(), vec![]).is_err());
    assert!(DoseRows::new(grid, vec![3, 2]).is_err());
}

#[test]
fn hu_curve_default_and_user_curves() {
    let c = HuDensityCurve::default();
    assert!((c.density(-1000.0) - 0.001).abs() < 1e-12);
    assert!((c.density(-2000.0) - 0.001).abs() < 1e-12);
    assert!((c.density(-500.0) - 0.5005).abs() < 1e-12);
    assert!((c.density(1000.0) - 1.58).abs() < 1e-12);
    let json = serde_json::to_string(&c).unwrap();
    let back: HuDensityCurve = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    assert!(serde_json::from_str::<HuDensityCurve>("[[0, 1], [-10, 2]]").is_err());
}

/// An "imported matrix" engine: columns come from a stored matrix. Shows that
/// another engine plugs into the same provided `influence` method.
struct MatrixEngine {
    d: DoseInfluence,
}

struct MatrixBeam {
    columns: Vec<Vec<(u32, f32)>>,
    range: Range<usize>,
    beam: usize,
}

impl PreparedBeam for MatrixBeam {
    fn beam_index(&self) -> usize {
        self.beam
    }
    fn beamlet_range(&self) -> Range<usize> {
        self.range.clone()
    }
    fn column(&self, beamlet: usize, out: &mut BeamletColumn) -> dosepaint_dose::Result<()> {
        out.clear();
        for &(r, v) in &self.columns[beamlet - self.range.start] {
            out.rows.push(r);
            out.values.push(v);
        }
        Ok(())
    }
}

impl DoseEngine for MatrixEngine {
    fn name(&self) -> String {
        "imported matrix".into()
    }
    fn prepare_beam(
        &self,
        _patient: &PatientModel,
        _rows: &DoseRows,
        layout: &BeamletLayout,
        beam_index: usize,
        _beam: &Beam,
    ) -> dosepaint_dose::Result<Box<dyn PreparedBeam>> {
        let range = layout.beam_range(beam_index);
        Ok(Box::new(MatrixBeam {
            columns: range.clone().map(|j| self.d.column(j)).collect(),
            range,
            beam: beam_index,
        }))
    }
}

#[test]
fn engines_are_object_safe_and_swappable() {
    let (grid, patient) = water_cube(40.0, 4.0);
    let ptv = sphere(&grid, [0.0; 3], 12.0);
    let beams = gantry_beams(&[0.0, 120.0, 240.0]);
    let layout = hfs_layout(&beams, &ptv, &BeamletGridSpec::default()).unwrap();
    let rows = DoseRows::inside_structures(grid, &[&ptv]).unwrap();
    let pencil: Box<dyn DoseEngine + Send + Sync> = Box::new(default_engine());
    let d = pencil.influence(&patient, &rows, &beams, &layout).unwrap();
    assert!(pencil.name().contains("generic 6 MV"));
    let imported: Box<dyn DoseEngine + Send + Sync> = Box::new(MatrixEngine { d: d.clone() });
    let d2 = imported
        .influence(&patient, &rows, &beams, &layout)
        .unwrap();
    assert_eq!(d2.to_csr(), d.to_csr());
    // The default fluence dose of a foreign engine is refused clearly.
    let map =
        dosepaint_dose::FluenceMap::from_weights(&layout, &vec![1.0; layout.len()], 0).unwrap();
    let e = imported
        .beam_dose(&patient, &rows, &beams, &layout, 0, &map)
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)));
    // Single columns equal the batched ones.
    let prepared = pencil
        .prepare_beam(&patient, &rows, &layout, 1, &beams[1])
        .unwrap();
    let mut col = BeamletColumn::default();
    for j in layout.beam_range(1) {
        prepared.column(j, &mut col).unwrap();
        let stored = d.column(j);
        assert_eq!(col.rows.len(), stored.len());
        for ((r, v), (sr, sv)) in col.rows.iter().zip(&col.values).zip(&stored) {
            assert_eq!(r, sr);
            assert!((v - sv).abs() <= 1e-6 * sv.abs());
        }
    }
    assert!(
        prepared
            .column(layout.beam_range(0).start, &mut col)
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn dose_is_linear_in_beamlet_weights(
        a in prop::collection::vec(0.0f64..2.0, 16),
        b in prop::collection::vec(0.0f64..2.0, 16),
        s in 0.0f64..3.0,
    ) {
        // Forward model (no matrix) on a 4 x 4 beamlet field: dose(a + s b) =
        // dose(a) + s dose(b).
        let (grid, patient) = water_cube(40.0, 5.0);
        let rows = DoseRows::all(grid).unwrap();
        let beams = vec![Beam::new("AP", 0.0, 0.0, 0.0, [0.0; 3]).unwrap()];
        let layout = open_field_layout(20.0, 20.0, 5.0, 5.0).unwrap();
        let engine = default_engine();
        let dose = |w: &[f64]| {
            let map = dosepaint_dose::FluenceMap::from_weights(&layout, w, 0).unwrap();
            engine.beam_dose(&patient, &rows, &beams, &layout, 0, &map).unwrap()
        };
        let c: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + s * y).collect();
        let (da, db, dc) = (dose(&a), dose(&b), dose(&c));
        let max = dc.iter().copied().fold(1e-9, f64::max);
        for i in 0..dc.len() {
            prop_assert!((dc[i] - da[i] - s * db[i]).abs() < 1e-5 * max);
        }
    }
}

#[test]
fn machine_file_round_trips_and_rejects_bad_files() {
    let m = Machine::generic_6mv();
    let back = Machine::from_json(&m.to_json()).unwrap();
    assert_eq!(back, m);
    assert!(matches!(
        Machine::from_json("{"),
        Err(Error::MachineFile(_))
    ));
    let mut p = m.params().clone();
    p.primary.attenuation_per_mm = -0.01;
    let e = Machine::new(p).unwrap_err();
    assert!(e.to_string().contains("primary.attenuation_per_mm"), "{e}");
    let mut p = m.params().clone();
    p.source.collimator_distance_mm = 2000.0;
    assert!(Machine::new(p).is_err());
    let unknown = m
        .to_json()
        .replacen("\"name\"", "\"colour\": 1, \"name\"", 1);
    assert!(matches!(
        Machine::from_json(&unknown),
        Err(Error::MachineFile(_))
    ));
}

#[test]
fn commissioning_recovers_a_known_machine() {
    // Synthetic "measurements" from the generic machine; start from a
    // perturbed copy and fit three parameters back.
    let truth = Machine::generic_6mv();
    let f10 = Field::square(100.0);
    let depths: Vec<f64> = [5.0, 15.0, 30.0, 50.0, 100.0, 150.0, 200.0].to_vec();
    let pdd = |field: Field| MeasuredPdd {
        field,
        ssd_mm: 1000.0,
        points: depths
            .iter()
            .copied()
            .zip(truth.pdd(field, 1000.0, &depths))
            .collect(),
        weight: 1.0,
    };
    let xs = [40.0, 50.0, 53.0, 55.0, 57.0, 60.0, 70.0];
    let data = CommissioningData {
        pdds: vec![
            pdd(f10),
            pdd(Field::square(50.0)),
            pdd(Field::square(200.0)),
        ],
        profiles: vec![MeasuredProfile {
            field: f10,
            ssd_mm: 1000.0,
            depth_mm: 100.0,
            points: xs
                .iter()
                .copied()
                .zip(truth.profile(f10, 1000.0, 100.0, &xs))
                .collect(),
            weight: 1.0,
        }],
    };
    let mut start = truth.params().clone();
    start.primary.attenuation_per_mm *= 1.15;
    start.scatter.amplitude *= 0.8;
    start.primary.sigma_mm *= 1.3;
    let options = FitOptions {
        free: vec![
            FitParameter::PrimaryAttenuation,
            FitParameter::ScatterAmplitude,
            FitParameter::PrimarySigma,
        ],
        max_iters: 400,
        rounds: 2,
        initial_step: 0.2,
    };
    let before = commission(
        &start,
        &data,
        &FitOptions {
            max_iters: 1,
            rounds: 1,
            ..options.clone()
        },
    )
    .unwrap();
    let report = commission(&start, &data, &options).unwrap();
    assert!(before.rms_percent > 1.0, "start rms {}", before.rms_percent);
    assert!(report.rms_percent < 0.05, "rms {}", report.rms_percent);
    let p = report.machine.params();
    let t = truth.params();
    assert!((p.primary.attenuation_per_mm / t.primary.attenuation_per_mm - 1.0).abs() < 0.01);
    assert!((p.primary.sigma_mm / t.primary.sigma_mm - 1.0).abs() < 0.02);
    // The fitted machine is calibrated again: 1 Gy at its depth of maximum.
    let m = &report.machine;
    let d = m.water_dose(f10, 1000.0, m.depth_of_maximum_mm(), [0.0, 0.0]);
    assert!((d - 1.0).abs() < 1e-9);
    // Bad data is refused.
    let mut bad = data.clone();
    bad.pdds[0].points[0].1 = f64::NAN;
    assert!(commission(&start, &bad, &options).is_err());
    assert!(commission(&start, &CommissioningData::default(), &options).is_err());
}

#[test]
fn fluence_maps_are_validated_and_serialise() {
    use dosepaint_dose::FluenceMap;
    assert!(FluenceMap::new(0.0, 0.0, 5.0, 5.0, 0, 0, vec![]).is_err());
    assert!(FluenceMap::new(0.0, 0.0, 0.0, 5.0, 1, 1, vec![1.0]).is_err());
    assert!(FluenceMap::new(0.0, 0.0, 5.0, 5.0, 2, 1, vec![1.0]).is_err());
    let e = FluenceMap::new(0.0, 0.0, 5.0, 5.0, 2, 2, vec![1.0, 1.0, -1.0, 0.0]).unwrap_err();
    assert!(e.to_string().contains("row 1, column 0"), "{e}");
    assert!(FluenceMap::rectangle(1.0, 1.0, 0.0, 2.0, 1.0).is_err());
    let m = FluenceMap::new(-2.5, 2.5, 5.0, 5.0, 2, 1, vec![0.5, 2.0]).unwrap();
    let back: FluenceMap = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
    // Deserialising validates as `new` does (negative pixel width).
    let bad = r#"{"x0_mm":0,"y0_mm":0,"dx_mm":-5,"dy_mm":5,"n_cols":1,"n_rows":1,"values":[1]}"#;
    let e = serde_json::from_str::<FluenceMap>(bad).unwrap_err();
    assert!(e.to_string().contains("pixel size"), "{e}");
    let options: PencilBeamOptions = serde_json::from_str("{\"lateral_cutoff_mm\": 30.0}").unwrap();
    assert!((options.lateral_cutoff_mm - 30.0).abs() < 1e-12);
    assert!((options.relative_threshold - 1e-4).abs() < 1e-12);
}

#[test]
fn columns_honour_the_cutoff_the_threshold_and_row_order() {
    // `PencilBeamOptions`: a column holds only voxels whose projection lies
    // within the lateral cut-off of the beamlet's centre, entries below
    // `relative_threshold` x the column's maximum are dropped, rows ascend;
    // what is kept is the exact model's value.
    let (grid, patient) = water_cube(40.0, 4.0);
    let beams = gantry_beams(&[30.0]);
    let layout = open_field_layout(30.0, 20.0, 5.0, 5.0).unwrap();
    let rows = DoseRows::all(grid.clone()).unwrap();
    let (cutoff, threshold) = (12.0, 0.02);
    let cut = PencilBeamEngine::new(
        Machine::generic_6mv(),
        PencilBeamOptions {
            lateral_cutoff_mm: cutoff,
            relative_threshold: threshold,
            ..PencilBeamOptions::default()
        },
    )
    .unwrap()
    .prepare(&patient, &rows, &layout, 0, &beams[0])
    .unwrap();
    let exact = PencilBeamEngine::new(Machine::generic_6mv(), PencilBeamOptions::exact())
        .unwrap()
        .prepare(&patient, &rows, &layout, 0, &beams[0])
        .unwrap();
    let geometry = beams[0].geometry(PatientPosition::HFS).unwrap();
    let bev = |row: u32| {
        let p = grid.voxel_center(grid.voxel_index(rows.voxels()[row as usize] as usize));
        geometry.project(p).unwrap().0
    };
    let (mut col, mut full) = (BeamletColumn::default(), BeamletColumn::default());
    let mut dropped_by_cutoff = 0;
    for j in layout.beam_range(0) {
        cut.column(j, &mut col).unwrap();
        exact.column(j, &mut full).unwrap();
        assert!(!col.rows.is_empty(), "beamlet {j}");
        assert!(col.rows.windows(2).all(|w| w[0] < w[1]), "beamlet {j}");
        let vmax = col.values.iter().copied().fold(0.0f32, f32::max);
        assert!(col.values.iter().all(|&v| v >= threshold as f32 * vmax));
        let c = layout.center_mm(j);
        let dist = |row: u32| {
            let [x, y] = bev(row);
            (x - c[0]).hypot(y - c[1])
        };
        // Kept entries: inside the cut-off, with the exact model's value
        // (the radiological depths are sampled on the same beam-fixed ray
        // lattice whatever the cut-off).
        for (r, v) in col.rows.iter().zip(&col.values) {
            assert!(dist(*r) <= cutoff + 1e-3, "beamlet {j}, row {r}");
            let n = full.rows.binary_search(r).expect("row of the exact column");
            let e = full.values[n];
            assert!((v - e).abs() <= 1e-6 * e, "{v} vs {e}");
        }
        // Dropped entries: beyond the cut-off or below the threshold.
        for (r, v) in full.rows.iter().zip(&full.values) {
            if col.rows.binary_search(r).is_err() {
                let d = dist(*r);
                if d > cutoff + 1e-3 {
                    dropped_by_cutoff += 1;
                } else {
                    assert!(
                        d > cutoff - 1e-3 || *v < threshold as f32 * vmax,
                        "beamlet {j}, row {r}: {v} at {d} mm dropped"
                    );
                }
            }
        }
    }
    assert!(
        dropped_by_cutoff > 0,
        "the cut-off must bite in this set-up"
    );
}

#[test]
fn dose_rows_inside_structures_are_their_union() {
    let (grid, _) = water_cube(20.0, 4.0);
    let a = sphere(&grid, [-8.0, 0.0, 0.0], 7.0);
    let b = sphere(&grid, [8.0, 0.0, 0.0], 7.0);
    let rows = DoseRows::inside_structures(grid.clone(), &[&a, &b]).unwrap();
    let expected: Vec<u32> = (0..grid.n_voxels() as u32)
        .filter(|&n| a.mask().as_slice()[n as usize] || b.mask().as_slice()[n as usize])
        .collect();
    assert!(a.voxel_count() > 0 && b.voxel_count() > 0);
    assert!(a.intersection(&b).unwrap().is_empty());
    assert_eq!(rows.voxels(), expected.as_slice());
    assert_eq!(rows.len(), a.voxel_count() + b.voxel_count());
    // Structures on a finer grid are resampled (nearest) onto the dose grid.
    let fine = Grid::new([20, 20, 20], [2.0; 3], [-19.0; 3]).unwrap();
    let a_fine = sphere(&fine, [-8.0, 0.0, 0.0], 7.0);
    let coarse = DoseRows::inside_structures(grid.clone(), &[&a_fine]).unwrap();
    assert_eq!(
        coarse.voxels(),
        a_fine.resample(&grid).voxel_indices().as_slice()
    );
    // No structure, or only empty ones: a clear error.
    let none = Structure::new(
        "Empty",
        StructureRole::Target,
        Volume::filled(grid.clone(), false),
    )
    .unwrap();
    for list in [vec![], vec![&none]] {
        let e = DoseRows::inside_structures(grid.clone(), &list).unwrap_err();
        assert!(matches!(e, Error::Empty { .. }), "{e}");
    }
}

#[test]
fn a_voxels_depth_does_not_depend_on_the_other_rows() {
    // The radiological depth of a voxel comes from rays on a lattice fixed
    // to the beam, so computing dose in the whole cube or only in a small
    // sphere gives the same depth (and hence the same dose) in the sphere.
    let (grid, _) = water_cube(40.0, 4.0);
    // A heterogeneous patient: a low-density slab, so depths vary laterally.
    let g2 = grid.clone();
    let density = Volume::from_fn(grid.clone(), move |v| {
        let p = g2.voxel_center(v);
        if p[0] > 3.0 && p[1] < -5.0 {
            0.25f32
        } else {
            1.0
        }
    });
    let patient = PatientModel::from_density(density, PatientPosition::HFS).unwrap();
    let beams = gantry_beams(&[20.0]);
    let layout = open_field_layout(30.0, 30.0, 5.0, 5.0).unwrap();
    let engine = default_engine();
    let all = DoseRows::all(grid.clone()).unwrap();
    let ball = sphere(&grid, [6.0, 4.0, -2.0], 9.0);
    let few = DoseRows::inside_structures(grid.clone(), &[&ball]).unwrap();
    let depth_by_voxel = |rows: &DoseRows| -> Vec<(u32, f32)> {
        let pb = engine
            .prepare(&patient, rows, &layout, 0, &beams[0])
            .unwrap();
        pb.radiological_depths()
            .into_iter()
            .map(|(r, z)| (rows.voxels()[r as usize], z))
            .collect()
    };
    let everywhere = depth_by_voxel(&all);
    let inside = depth_by_voxel(&few);
    assert!(inside.len() > 20);
    for (voxel, z) in inside {
        let n = everywhere
            .binary_search_by_key(&voxel, |e| e.0)
            .expect("the voxel is prepared with all rows too");
        assert_eq!(z.to_bits(), everywhere[n].1.to_bits(), "voxel {voxel}");
    }
}
