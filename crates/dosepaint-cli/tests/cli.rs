//! The `dosepaint` binary as a user runs it: outputs, JSON and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dosepaint::core::{Grid, Volume};
use dosepaint::io::{NiftiReadOptions, NiftiWriteOptions, read_nifti, write_nifti};
use dosepaint::spec::InputSpec;
use dosepaint::{PhantomCase, demo_spec};

fn dosepaint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dosepaint"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dosepaint-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn lq_calculator_matches_the_reference_rows() {
    // ../shared/reference/radiobiology.csv: 60 Gy in 20 fractions, alpha/beta 3 Gy:
    // BED 120 Gy, EQD2 72 Gy.
    let o = dosepaint(&[
        "--json",
        "lq",
        "--dose",
        "60",
        "--fractions",
        "20",
        "--alpha-beta",
        "3",
        "--to-fractions",
        "30",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!((v["bed_gy"].as_f64().unwrap() - 120.0).abs() < 1e-9);
    assert!((v["eqd2_gy"].as_f64().unwrap() - 72.0).abs() < 1e-9);
    // The iso-effective dose in 30 fractions has the same BED: n d (1 + d/3) = 120.
    let d30 = v["isoeffective"][1].as_f64().unwrap();
    let d = d30 / 30.0;
    assert!((30.0 * d * (1.0 + d / 3.0) - 120.0).abs() < 1e-9);
    let bad = dosepaint(&[
        "lq",
        "--dose",
        "60",
        "--fractions",
        "0",
        "--alpha-beta",
        "3",
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("fraction"), "{}", stderr(&bad));
}

fn ramp(dir: &Path, name: &str, scale: f32) -> PathBuf {
    let grid = Grid::new([30, 30, 20], [3.0; 3], [0.0; 3]).unwrap();
    let dose = Volume::from_fn(grid, |[i, j, k]| {
        scale * (20.0 + i as f32 + 0.5 * j as f32 + 0.2 * k as f32)
    });
    let path = dir.join(name);
    write_nifti(&path, &dose, &NiftiWriteOptions::default()).unwrap();
    path
}

#[test]
fn gamma_eval_and_convert_on_files() {
    let dir = temp_dir("files");
    let a = ramp(&dir, "a.nii.gz", 1.0);
    let b = ramp(&dir, "b.nii.gz", 1.01);
    let o = dosepaint(&["--json", "gamma", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        (v["pass_rate"].as_f64().unwrap() - 1.0).abs() < 1e-12,
        "1 % everywhere passes 3 %/3 mm"
    );

    // A mask over the whole grid: the mean is the mean of the ramp.
    let grid = Grid::new([30, 30, 20], [3.0; 3], [0.0; 3]).unwrap();
    let mask = dir.join("all.nii.gz");
    write_nifti(
        &mask,
        &Volume::filled(grid, 1u8),
        &NiftiWriteOptions::default(),
    )
    .unwrap();
    let mask_arg = format!("Body={}", mask.display());
    let o = dosepaint(&[
        "--json",
        "eval",
        "--dose",
        a.to_str().unwrap(),
        "--mask",
        &mask_arg,
        "--goal",
        "Body max < 100 Gy",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // mean of 20 + i + 0.5 j + 0.2 k over i, j < 30, k < 20: 20 + 14.5 + 7.25 + 1.9
    assert!((v["statistics"][0]["mean_gy"].as_f64().unwrap() - 43.65).abs() < 1e-3);
    assert_eq!(v["goals"][0]["passed"], serde_json::Value::Bool(true));

    // NIfTI -> DICOM CT series -> NIfTI keeps the values (integers in HU).
    let series = dir.join("series");
    assert!(
        dosepaint(&["convert", a.to_str().unwrap(), series.to_str().unwrap()])
            .status
            .success()
    );
    let back = dir.join("back.nii.gz");
    let o = dosepaint(&["convert", series.to_str().unwrap(), back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let original = read_nifti(&a, &NiftiReadOptions::default())
        .unwrap()
        .to_f32();
    let round = read_nifti(&back, &NiftiReadOptions::default())
        .unwrap()
        .to_f32();
    assert!(round.grid().approx_eq(original.grid(), 1e-3));
    let worst = original
        .as_slice()
        .iter()
        .zip(round.as_slice())
        .map(|(x, y)| (x.round() - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "{worst}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let o = dosepaint(&["gamma", "/nonexistent/a.nii", "/nonexistent/b.nii"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
    let o = dosepaint(&["demo", "--case", "lung"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("head-neck"), "{}", stderr(&o));
    let o = dosepaint(&["plan", "/nonexistent/plan.toml"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("plan.toml"), "{}", stderr(&o));
}

#[test]
fn batch_runs_one_shard_of_a_manifest() {
    let dir = temp_dir("batch");
    for name in ["a", "b", "c"] {
        let mut spec = demo_spec(PhantomCase::Box);
        spec.inputs = InputSpec::Phantom {
            case: PhantomCase::Box,
            spacing_mm: Some([10.0; 3]),
        };
        spec.dose.grid_spacing_mm = [10.0; 3];
        spec.beams.bixel_width_mm = 10.0;
        spec.optimizer.max_iterations = 20;
        spec.outputs.dicom = false;
        spec.outputs.report = false;
        spec.outputs.nifti = false;
        std::fs::write(dir.join(format!("{name}.toml")), spec.to_toml().unwrap()).unwrap();
    }
    std::fs::write(
        dir.join("m.csv"),
        "case,spec,out\na,a.toml,res/a\nb,b.toml,res/b\nc,c.toml,res/c\n",
    )
    .unwrap();
    let manifest = dir.join("m.csv");
    let o = dosepaint(&["batch", manifest.to_str().unwrap(), "--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Shard 1 of 2 takes lines 0 and 2.
    assert!(dir.join("res/a/metrics.json").exists());
    assert!(!dir.join("res/b").exists());
    assert!(dir.join("res/c/metrics.json").exists());
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("batch-shard-1-of-2.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary.as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Converting a NIfTI whose values do not fit a 16-bit CT series says how
/// many voxels were clipped (a PET in Bq/ml is not a CT), and still writes
/// the series; values inside the range are not reported.
#[test]
fn convert_reports_clipped_voxels() {
    let dir = temp_dir("clip");
    let grid = Grid::new([4, 3, 2], [2.0; 3], [0.0; 3]).unwrap();
    let mut values = vec![10.0f32; 24];
    values[0] = 40_000.0;
    values[5] = -40_000.0;
    values[7] = 32_767.2; // rounds to 32767: inside
    let input = dir.join("pet.nii.gz");
    write_nifti(
        &input,
        &Volume::from_vec(grid, values).unwrap(),
        &NiftiWriteOptions::default(),
    )
    .unwrap();
    let o = dosepaint(&[
        "convert",
        input.to_str().unwrap(),
        dir.join("series").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: 2 voxels"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
