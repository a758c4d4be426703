//! End-to-end tests of the facade on small cases: outputs, specs, the
//! user-file path and error messages.

use std::path::{Path, PathBuf};

use dosepaint::core::StructureRole;
use dosepaint::io::{
    NiftiReadOptions, NiftiWriteOptions, RtDoseReadOptions, read_nifti, read_rtdose, read_rtplan,
    read_rtstruct, write_nifti,
};
use dosepaint::spec::{ImageFile, InputSpec, MaskFile, StructureFiles};
use dosepaint::{Error, Metrics, PhantomCase, Pipeline, PlanSpec, Stage, demo_spec};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dosepaint-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The water-box demo on 8 mm voxels: a whole plan in a few seconds.
fn coarse_box(out: &Path) -> PlanSpec {
    let mut spec = demo_spec(PhantomCase::Box);
    spec.inputs = InputSpec::Phantom {
        case: PhantomCase::Box,
        spacing_mm: Some([8.0; 3]),
    };
    spec.dose.grid_spacing_mm = [8.0; 3];
    spec.beams.bixel_width_mm = 10.0;
    spec.optimizer.max_iterations = 60;
    spec.sequencing.compare_levels = vec![5];
    spec.outputs.dir = out.to_path_buf();
    spec
}

#[test]
fn a_whole_plan_writes_every_output() {
    let out = temp_dir("outputs");
    let spec = coarse_box(&out);
    let mut stages = Vec::new();
    let result = Pipeline::new()
        .run(&spec, &mut |p| {
            if let dosepaint::Progress::Finished(stage, secs) = p {
                assert!(secs >= 0.0);
                stages.push(stage);
            }
        })
        .unwrap();
    assert_eq!(stages, Stage::ALL.to_vec(), "every stage reports, in order");
    // A uniform 60 Gy box target is easy: the plan must follow it closely.
    let q = &result.evaluation.painting.target;
    assert!(q.quality_factor < 0.05, "QF {}", q.quality_factor);

    // metrics.json has the keys the CLI and cohort scripts rely on.
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "timings_s",
        "goals",
        "quality_factor",
        "fraction_within_5pct",
        "delivered_quality_factor",
        "delivered_fraction_within_5pct",
        "probabilities",
        "sequencing",
    ] {
        assert!(json.get(key).is_some(), "metrics.json lacks {key}");
    }
    let timings = json["timings_s"].as_object().unwrap();
    for stage in Stage::ALL {
        assert!(
            timings.contains_key(stage.name()),
            "no timing for {}",
            stage.name()
        );
    }
    let total = timings["total"].as_f64().unwrap();
    let sum: f64 = Stage::ALL
        .iter()
        .map(|s| timings[s.name()].as_f64().unwrap())
        .sum();
    assert!(
        sum <= total * 1.01 + 1e-3,
        "stages {sum} s exceed the total {total} s"
    );
    let metrics: Metrics = serde_json::from_str(&text).unwrap();
    assert_eq!(metrics.goals.len(), 2 * spec.goals.len());

    // NIfTI volumes read back on the dose grid.
    for name in [
        "ct",
        "prescription",
        "dose_optimized",
        "dose_delivered",
        "q_delivered",
    ] {
        let v = read_nifti(
            out.join(format!("{name}.nii.gz")),
            &NiftiReadOptions::default(),
        )
        .unwrap();
        assert!(
            v.grid().approx_eq(result.optimized_dose.grid(), 1e-3),
            "{name} grid"
        );
    }
    let dose = read_nifti(
        out.join("dose_delivered.nii.gz"),
        &NiftiReadOptions::default(),
    )
    .unwrap()
    .to_f32();
    let max_diff = dose
        .as_slice()
        .iter()
        .zip(result.delivered_dose.as_slice())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "NIfTI dose differs by {max_diff} Gy");

    // DICOM objects read back with the same content.
    let rd = read_rtdose(out.join("dicom/rtdose.dcm"), &RtDoseReadOptions::default()).unwrap();
    let d_max = result.delivered_dose.stats().max;
    assert!((rd.dose.stats().max - d_max).abs() < 1e-3 * d_max);
    let rs = read_rtstruct(out.join("dicom/rtstruct.dcm")).unwrap();
    assert!(rs.roi("PTV").is_some());
    let plan = read_rtplan(out.join("dicom/rtplan.dcm")).unwrap();
    assert_eq!(plan.beams.len(), spec.beams.gantry_deg.len());

    // The report is one self-contained page with its pictures inline.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"));
    assert!(html.matches("<img").count() >= 6 + 2 * spec.beams.gantry_deg.len());
    assert!(html.contains("<svg"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn example_specs_match_the_built_in_demos() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (case, file) in [
        (PhantomCase::HeadNeck, "head_neck.toml"),
        (PhantomCase::Tg119, "tg119.toml"),
        (PhantomCase::Box, "water_box.toml"),
    ] {
        let mut from_file = PlanSpec::from_file(dir.join(file)).unwrap();
        from_file.base_dir = PathBuf::new();
        assert_eq!(
            from_file,
            demo_spec(case),
            "examples/{file} is out of date: run `cargo run -p dosepaint --example write_demo_specs`"
        );
        // JSON round trip too.
        let json = serde_json::to_string(&from_file).unwrap();
        assert_eq!(PlanSpec::from_json(&json).unwrap(), from_file);
    }
}

#[test]
fn a_plan_runs_on_the_users_own_nifti_files() {
    let dir = temp_dir("files");
    // Export the coarse box phantom as NIfTI files, as a user would bring them.
    let params = dosepaint::phantom::WaterBoxParams {
        spacing_mm: [8.0; 3],
        ..dosepaint::phantom::WaterBoxParams::default()
    };
    let p = dosepaint::phantom::water_box(&params).unwrap();
    write_nifti(dir.join("ct.nii.gz"), &p.ct, &NiftiWriteOptions::default()).unwrap();
    let mut masks = Vec::new();
    for s in &p.structures {
        let path = dir.join(format!("{}.nii.gz", s.name()));
        write_nifti(
            &path,
            &s.mask().map(|&b| u8::from(b)),
            &NiftiWriteOptions::default(),
        )
        .unwrap();
        masks.push(MaskFile {
            name: s.name().to_string(),
            role: s.role(),
            path: PathBuf::from(format!("{}.nii.gz", s.name())),
        });
    }
    let mut spec = coarse_box(Path::new("out"));
    spec.inputs = InputSpec::Files {
        ct: ImageFile::Nifti {
            path: "ct.nii.gz".into(),
        },
        structures: StructureFiles::NiftiMasks { masks },
        images: std::collections::BTreeMap::default(),
    };
    spec.outputs.dicom = false;
    spec.outputs.report = false;
    let spec_path = dir.join("plan.toml");
    std::fs::write(&spec_path, spec.to_toml().unwrap()).unwrap();

    let loaded = PlanSpec::from_file(&spec_path).unwrap();
    let from_files = Pipeline::new().run(&loaded, &mut |_| {}).unwrap();
    assert!(
        dir.join("out/metrics.json").exists(),
        "outputs resolve against the spec's directory"
    );
    let ptv = from_files
        .structures
        .iter()
        .find(|s| s.name() == "PTV")
        .unwrap();
    assert_eq!(ptv.role(), StructureRole::Target);

    // Same plan from the phantom directly: the same dose (NIfTI is lossless for f32 and masks).
    let mut direct_spec = coarse_box(&dir.join("direct"));
    direct_spec.outputs.dicom = false;
    direct_spec.outputs.report = false;
    let direct = Pipeline::new().run(&direct_spec, &mut |_| {}).unwrap();
    let qa = from_files.evaluation.painting.target.quality_factor;
    let qb = direct.evaluation.painting.target.quality_factor;
    assert!((qa - qb).abs() < 1e-6, "{qa} vs {qb}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_say_what_to_fix() {
    let out = temp_dir("errors");
    let mut spec = coarse_box(&out);
    spec.objectives
        .push(dosepaint::spec::ObjectiveSpec::MaxDose {
            structure: "Cord".into(),
            limit_gy: 45.0,
            weight: 1.0,
        });
    match Pipeline::new().run(&spec, &mut |_| {}) {
        Err(Error::UnknownStructure { name, available }) => {
            assert_eq!(name, "Cord");
            assert!(available.contains("PTV"), "{available}");
        }
        other => panic!(
            "expected an unknown-structure error, got {:?}",
            other.map(|_| ())
        ),
    }
    let missing = PlanSpec::from_file(out.join("nope.toml")).unwrap_err();
    assert!(missing.to_string().contains("nope.toml"), "{missing}");
    let bad = PlanSpec::from_toml("name = 3").unwrap_err();
    assert!(matches!(bad, Error::Spec { .. }));
    let mut no_beams = coarse_box(&out);
    no_beams.beams.gantry_deg.clear();
    assert!(
        Pipeline::new()
            .run(&no_beams, &mut |_| {})
            .unwrap_err()
            .to_string()
            .contains("gantry")
    );
    // A ring around nothing, and a normalisation to a negative dose: named
    // errors, not a panic or negative beamlet weights.
    let mut no_ring = coarse_box(&out);
    no_ring
        .objectives
        .push(dosepaint::spec::ObjectiveSpec::Ring {
            around: Vec::new(),
            inner_mm: 10.0,
            limit_gy: 30.0,
            weight: 1.0,
        });
    let e = Pipeline::new().run(&no_ring, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { what, .. } if what == "ring objective"),
        "{e}"
    );
    for dose_gy in [-50.0, 0.0, f64::NAN] {
        let mut bad_norm = coarse_box(&out);
        bad_norm.normalize = Some(dosepaint::spec::NormalizeSpec {
            structure: "PTV".into(),
            volume_percent: 95.0,
            dose_gy,
        });
        let mut started = Vec::new();
        let e = Pipeline::new()
            .run(&bad_norm, &mut |p| {
                if let dosepaint::Progress::Started(s) = p {
                    started.push(s);
                }
            })
            .unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { what, .. } if what == "normalisation"),
            "{e}"
        );
        assert!(e.to_string().contains("PTV"), "{e}");
        assert!(started.is_empty(), "checked before {started:?}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}
