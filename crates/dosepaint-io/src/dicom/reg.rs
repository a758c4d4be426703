//! Spatial Registration (REG) with matrix (rigid or affine) transforms.
//!
//! DICOM PS3.3 C.20.2.1.1: a Spatial Registration object has its own frame
//! of reference `A` (the registered-to frame, usually the planning CT's).
//! Each item of the Registration Sequence names a frame `B` and a 4x4
//! Frame of Reference Transformation Matrix `M_B` that maps a point given in
//! `B` to the same anatomical point in `A`: `p_A = M_B p_B` (row-major,
//! column vectors). So the map from frame `X` to frame `Y` is
//! `M_Y^-1 M_X`, and to resample a PET (frame `P`) onto the planning CT
//! (frame `C`) with `Volume::resample_through`, pass
//! `registration.transform(C, P)` (planning -> PET points).

use std::path::Path;

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dosepaint_core::AffineTransform;
use serde::{Deserialize, Serialize};

use super::PatientInfo;
use super::common::{Common, DicomFile, Put, WriteSyntax, new_uid, write_dataset};
use crate::{Error, Result};

/// One registered frame of reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredFrame {
    /// Frame of Reference UID of the registered frame `B`.
    pub frame_of_reference_uid: String,
    /// Frame of Reference Transformation Matrix Type (`RIGID`,
    /// `RIGID_SCALE`, `AFFINE`).
    pub matrix_type: String,
    /// `p_A = M_B p_B`: from this frame to the registration's frame.
    pub to_registration_frame: AffineTransform,
}

/// A Spatial Registration object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The registration's own frame `A`.
    pub frame_of_reference_uid: String,
    /// The registered frames.
    pub frames: Vec<RegisteredFrame>,
}

impl Registration {
    fn to_a(&self, uid: &str) -> Result<AffineTransform> {
        if let Some(f) = self.frames.iter().find(|f| f.frame_of_reference_uid == uid) {
            return Ok(f.to_registration_frame.clone());
        }
        if uid == self.frame_of_reference_uid {
            return Ok(AffineTransform::identity());
        }
        Err(Error::input(
            "registration",
            format!(
                "frame of reference {uid} is not registered here (frames: {}, {})",
                self.frame_of_reference_uid,
                self.frames
                    .iter()
                    .map(|f| f.frame_of_reference_uid.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    /// The map taking points of frame `from` to frame `to`:
    /// `M_to^-1 M_from`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a frame the registration does not name;
    /// a singular matrix.
    pub fn transform(&self, from: &str, to: &str) -> Result<AffineTransform> {
        let a_from = self.to_a(from)?;
        let a_to = self.to_a(to)?;
        Ok(a_to.inverse()?.after(&a_from))
    }
}

/// Reads a Spatial Registration with matrix registrations.
///
/// # Errors
/// [`Error::WrongModality`] for other objects (a deformable registration is
/// [`Error::Unsupported`]); [`Error::MissingTag`] / [`Error::InvalidTag`],
/// including a `RIGID` matrix that is not a rotation plus translation.
pub fn read_registration(path: impl AsRef<Path>) -> Result<Registration> {
    registration_from(&DicomFile::open(path.as_ref(), false)?)
}

/// Reads a Spatial Registration from bytes in memory.
///
/// # Errors
/// As [`read_registration`].
pub fn read_registration_bytes(bytes: &[u8], name: &str) -> Result<Registration> {
    registration_from(&DicomFile::from_bytes(bytes, name, false)?)
}

fn registration_from(file: &DicomFile) -> Result<Registration> {
    let root = file.root();
    let class = root.str(tags::SOP_CLASS_UID).unwrap_or_default();
    if class == uids::DEFORMABLE_SPATIAL_REGISTRATION_STORAGE {
        return Err(Error::Unsupported {
            path: file.path.clone(),
            reason: "deformable spatial registration; only matrix registrations are read".into(),
        });
    }
    // The SOP class alone identifies a registration whatever its Modality.
    if class != uids::SPATIAL_REGISTRATION_STORAGE {
        file.require_modality("REG", "a Spatial Registration")?;
    }
    let own = root.str_req(tags::FRAME_OF_REFERENCE_UID, "the registration's own frame")?;
    let mut frames = Vec::new();
    for item in root.seq_req(tags::REGISTRATION_SEQUENCE, "the registered frames")? {
        let uid = item.str_req(tags::FRAME_OF_REFERENCE_UID, "registered frame")?;
        let mut total = AffineTransform::identity();
        let mut kinds = Vec::new();
        for mr in item.seq_req(tags::MATRIX_REGISTRATION_SEQUENCE, "matrix registration")? {
            for m in mr.seq_req(tags::MATRIX_SEQUENCE, "matrix registration")? {
                let v = m.f64s_req(tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX, 16, "matrix")?;
                let rows = [
                    [v[0], v[1], v[2], v[3]],
                    [v[4], v[5], v[6], v[7]],
                    [v[8], v[9], v[10], v[11]],
                    [v[12], v[13], v[14], v[15]],
                ];
                let t = AffineTransform::from_rows(rows).map_err(|e| {
                    m.invalid(
                        tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX,
                        e.to_string(),
                    )
                })?;
                let kind = m
                    .str(tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX_TYPE)
                    .unwrap_or_else(|| "RIGID".into());
                if kind == "RIGID" && !t.is_rigid(1e-4) {
                    return Err(m.invalid(
                        tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX,
                        format!("type RIGID but {rows:?} is not a rotation plus translation"),
                    ));
                }
                if !matches!(kind.as_str(), "RIGID" | "RIGID_SCALE" | "AFFINE") {
                    return Err(m.invalid(
                        tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX_TYPE,
                        format!("\"{kind}\""),
                    ));
                }
                kinds.push(kind);
                // Matrices of a sequence apply in order: later ones after.
                total = t.after(&total);
            }
        }
        frames.push(RegisteredFrame {
            frame_of_reference_uid: uid,
            matrix_type: kinds.join("\\"),
            to_registration_frame: total,
        });
    }
    Ok(Registration {
        frame_of_reference_uid: own,
        frames,
    })
}

/// Writes a Spatial Registration whose own frame is `registration_frame`
/// and which registers each `(frame, M)` with `p_registration = M p_frame`.
/// The matrix type is `RIGID` when `M` is rigid, else `AFFINE`. Returns the
/// SOP Instance UID.
///
/// # Errors
/// [`Error::InvalidInput`] with no frames; I/O errors.
pub fn write_registration(
    path: impl AsRef<Path>,
    registration_frame: &str,
    frames: &[(String, AffineTransform)],
    patient: &PatientInfo,
    study_uid: Option<&str>,
    syntax: WriteSyntax,
) -> Result<String> {
    if frames.is_empty() {
        return Err(Error::input("spatial registration", "no registered frame"));
    }
    let sop = new_uid();
    let study = study_uid.map_or_else(new_uid, str::to_string);
    let series = new_uid();
    let mut obj = InMemDicomObject::new_empty();
    Common {
        sop_class: uids::SPATIAL_REGISTRATION_STORAGE,
        sop_instance: &sop,
        modality: "REG",
        patient,
        study_uid: &study,
        series_uid: &series,
        series_number: 1,
        series_description: "dosepaint registration",
        frame_of_reference_uid: Some(registration_frame),
        instance_number: 1,
    }
    .put(&mut obj);
    obj.put_str(tags::CONTENT_DATE, VR::DA, "");
    obj.put_str(tags::CONTENT_TIME, VR::TM, "");
    let items = frames
        .iter()
        .map(|(uid, t)| {
            let mut m = InMemDicomObject::new_empty();
            let flat: Vec<f64> = t.to_rows().iter().flatten().copied().collect();
            m.put_ds(tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX, &flat);
            let kind = if t.is_rigid(1e-6) { "RIGID" } else { "AFFINE" };
            m.put_str(
                tags::FRAME_OF_REFERENCE_TRANSFORMATION_MATRIX_TYPE,
                VR::CS,
                kind,
            );
            let mut mr = InMemDicomObject::new_empty();
            mr.put_seq(tags::MATRIX_SEQUENCE, vec![m]);
            let mut it = InMemDicomObject::new_empty();
            it.put_str(tags::FRAME_OF_REFERENCE_UID, VR::UI, uid.clone());
            it.put_seq(tags::MATRIX_REGISTRATION_SEQUENCE, vec![mr]);
            it
        })
        .collect();
    obj.put_seq(tags::REGISTRATION_SEQUENCE, items);
    write_dataset(obj, path.as_ref(), syntax)?;
    Ok(sop)
}
