//! Writes one file (or series) of every kind this crate writes into a
//! directory, with `expected.json` holding the values a reader must find.
//! `scripts/check_dicom_with_pydicom.py` reads them back with pydicom.
//!
//! ```text
//! cargo run -p dosepaint-io --example write_check_set -- /tmp/dp-check
//! python3 crates/dosepaint-io/scripts/check_dicom_with_pydicom.py /tmp/dp-check
//! ```

use dosepaint_core::{
    AffineTransform, Aperture, Beam, Grid, PatientPosition, Sequence, Structure, StructureRole,
    Volume,
};
use dosepaint_io::{
    DecayCorrection, Error, Image, ImageData, Modality, PatientInfo, PetAcquisition,
    ReferencedSeries, Result, RoiToWrite, RtDoseWriteOptions, RtPlanToWrite, RtStructWriteOptions,
    SeriesWriteOptions, Units, WriteSyntax, write_ct_series, write_registration, write_rtdose,
    write_rtplan, write_rtstruct, write_series,
};

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "dosepaint-check".into());
    let out = std::path::Path::new(&out);
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        path: out.into(),
        source: e,
    })?;
    let patient = PatientInfo {
        name: "Check^Pydicom".into(),
        id: "DP0001".into(),
    };
    let grid = Grid::new([32, 24, 6], [1.5, 1.5, 3.0], [-24.0, -18.0, -9.0])?;
    let hu = Volume::from_fn(grid.clone(), |[i, j, k]| {
        (i as i16) * 10 - (j as i16) * 5 + (k as i16) * 100 - 1000
    });
    let ct = write_ct_series(
        out.join("ct"),
        &hu,
        &SeriesWriteOptions {
            patient: patient.clone(),
            patient_position: Some(PatientPosition::HFS),
            ..Default::default()
        },
    )?;
    let pet_vals = Volume::from_fn(grid.clone(), |[i, j, k]| {
        1000.0 + (i * 37 + j * 11 + k * 3) as f32 * 2.5
    });
    let pet = Image::new(
        ImageData::F32(pet_vals.clone()),
        Modality::Pt,
        Units::BqPerMl,
    );
    let pet_w = write_series(
        out.join("pet"),
        &pet,
        &SeriesWriteOptions {
            patient: patient.clone(),
            syntax: WriteSyntax::ExplicitBig,
            frame_of_reference_uid: Some(ct.frame_of_reference_uid.clone()),
            pet: Some(PetAcquisition {
                weight_kg: 72.5,
                injected_bq: 350e6,
                half_life_s: 6586.2,
                injection_datetime: "20240301090000".into(),
                series_date: "20240301".into(),
                series_time: "100000".into(),
                decay_correction: DecayCorrection::Start,
            }),
            file_prefix: "PT".into(),
            ..Default::default()
        },
    )?;
    let boost = Structure::new(
        "BOOST",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), |[i, j, k]| {
            let r2 = (i as f64 - 15.0).powi(2) + (j as f64 - 11.0).powi(2);
            (1..5).contains(&k) && (4.0..=36.0).contains(&r2)
        }),
    )?;
    let rs_uid = write_rtstruct(
        out.join("rtstruct.dcm"),
        &ReferencedSeries::from(&ct),
        &[RoiToWrite {
            structure: &boost,
            color: [255, 128, 0],
            interpreted_type: None,
        }],
        &RtStructWriteOptions {
            patient: patient.clone(),
            ..Default::default()
        },
    )?;
    let dose = Volume::from_fn(grid.clone(), |[i, j, k]| 70.0 + 0.25 * (i + j + k) as f32);
    let beams = vec![
        Beam::new("G0", 0.0, 0.0, 0.0, [0.0, 0.0, 0.0])?,
        Beam::new("G180", 180.0, 0.0, 90.0, [0.0, 0.0, 0.0])?,
    ];
    let seq = |b: usize| {
        Sequence::step_and_shoot(
            b,
            5.0,
            -5.0,
            3,
            vec![
                Aperture {
                    left_mm: vec![-10.0, -20.0, -5.0],
                    right_mm: vec![10.0, 20.0, 5.0],
                    weight: 1.2,
                },
                Aperture {
                    left_mm: vec![0.0, -5.0, 0.0],
                    right_mm: vec![0.0, 5.0, 0.0],
                    weight: 0.4,
                },
            ],
        )
    };
    let seqs = vec![seq(0)?, seq(1)?];
    let plan_uid = write_rtplan(
        out.join("rtplan.dcm"),
        &RtPlanToWrite {
            beams: &beams,
            sequences: &seqs,
            fractions: 35,
            mu_per_unit_weight: 100.0,
            patient_position: PatientPosition::HFS,
            label: "check".into(),
            machine: "LINAC1".into(),
            energy_mv: 6.0,
            patient: patient.clone(),
            study_uid: Some(ct.study_uid.clone()),
            frame_of_reference_uid: Some(ct.frame_of_reference_uid.clone()),
            referenced_structure_set_uid: Some(rs_uid.clone()),
            syntax: WriteSyntax::ImplicitLittle,
        },
    )?;
    write_rtdose(
        out.join("rtdose.dcm"),
        &dose,
        &RtDoseWriteOptions {
            patient: patient.clone(),
            study_uid: Some(ct.study_uid.clone()),
            frame_of_reference_uid: Some(ct.frame_of_reference_uid.clone()),
            referenced_plan_uid: Some(plan_uid.clone()),
            ..Default::default()
        },
    )?;
    let m = AffineTransform::rigid([0.0, 0.0, 0.2], [5.0, -3.0, 12.0])?;
    write_registration(
        out.join("reg.dcm"),
        &ct.frame_of_reference_uid,
        &[("1.2.826.0.1.3680043.9.7777.1".into(), m.clone())],
        &patient,
        Some(&ct.study_uid),
        WriteSyntax::Deflated,
    )?;
    // Expected values, by file, for the pydicom script.
    let expected = serde_json::json!({
        "ct": {
            "files": ct.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().to_string()).collect::<Vec<_>>(),
            "hu_slice0": hu.as_slice()[..32 * 24].to_vec(),
            "hu_sum": hu.as_slice().iter().map(|&v| i64::from(v)).sum::<i64>(),
            "origin_k": (0..6).map(|k| grid.index_to_patient([0.0, 0.0, k as f64])).collect::<Vec<_>>(),
            "pixel_spacing": [1.5, 1.5],
            "frame_of_reference_uid": ct.frame_of_reference_uid,
            "series_uid": ct.series_uid,
        },
        "pet": {
            "files": pet_w.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().to_string()).collect::<Vec<_>>(),
            "bq_slice0": pet_vals.as_slice()[..32 * 24].to_vec(),
            "weight_kg": 72.5, "injected_bq": 350e6,
        },
        "rtstruct": { "roi": "BOOST", "color": [255, 128, 0], "slices_with_contours": 4, "series_uid": ct.series_uid },
        "rtdose": { "values": dose.as_slice().to_vec(), "rows": 24, "cols": 32, "frames": 6, "plan_uid": plan_uid },
        "rtplan": { "fractions": 35, "meterset": [1.6 * 100.0 / 35.0, 1.6 * 100.0 / 35.0], "gantry": [0.0, 180.0], "leaf_boundaries": [-7.5, -2.5, 2.5, 7.5], "structure_set_uid": rs_uid },
        "reg": { "matrix": m.to_rows() },
    });
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&expected).expect("json"),
    )
    .map_err(|e| Error::Io {
        path: out.join("expected.json"),
        source: e,
    })?;
    println!("wrote {}", out.display());
    Ok(())
}
