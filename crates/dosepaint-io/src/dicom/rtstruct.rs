//! RT Structure Set: ROIs with planar contours, read and written.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dosepaint_core::{Grid, PointMm, Structure, StructureRole};
use serde::{Deserialize, Serialize};

use super::common::{Common, DicomFile, Item, Put, WriteSyntax, new_uid, now_da_tm, write_dataset};
use super::{PatientInfo, WrittenSeries};
use crate::contour::{contours_of_slice, rasterize};
use crate::image::Image;
use crate::{Error, Result};

/// Contour Geometric Type (3006,0042).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ContourKind {
    /// `CLOSED_PLANAR`: a polygon (the only kind that is rasterized).
    ClosedPlanar,
    /// `OPEN_PLANAR`.
    OpenPlanar,
    /// `OPEN_NONPLANAR`.
    OpenNonplanar,
    /// `POINT` (e.g. an isocentre marker).
    Point,
}

/// One contour of an ROI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contour {
    /// Geometric type.
    pub kind: ContourKind,
    /// Points, LPS mm.
    pub points_mm: Vec<PointMm>,
}

/// One region of interest of a structure set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roi {
    /// ROI Number (3006,0022).
    pub number: i64,
    /// ROI Name (3006,0026).
    pub name: String,
    /// RT ROI Interpreted Type (3006,00A4), e.g. `PTV`, `ORGAN`, `EXTERNAL`.
    pub interpreted_type: Option<String>,
    /// ROI Display Color (3006,002A).
    pub color: Option<[u8; 3]>,
    /// Referenced Frame of Reference UID (3006,0024).
    pub frame_of_reference_uid: Option<String>,
    /// Contours.
    pub contours: Vec<Contour>,
}

impl Roi {
    /// The structure role implied by the interpreted type: GTV/CTV/PTV and
    /// treated volumes are targets, ORGAN and AVOIDANCE organs at risk,
    /// EXTERNAL the body; anything else (or none) is `Other`.
    pub fn role(&self) -> StructureRole {
        match self.interpreted_type.as_deref() {
            Some("GTV" | "CTV" | "PTV" | "TREATED_VOLUME" | "IRRAD_VOLUME") => {
                StructureRole::Target
            }
            Some("ORGAN" | "AVOIDANCE") => StructureRole::OrganAtRisk,
            Some("EXTERNAL") => StructureRole::External,
            _ => StructureRole::Other,
        }
    }

    /// Whether the ROI has closed planar contours (a volume).
    pub fn has_volume(&self) -> bool {
        self.contours
            .iter()
            .any(|c| c.kind == ContourKind::ClosedPlanar)
    }

    /// Rasterizes the closed planar contours onto `grid` (even-odd rule; see
    /// [`crate::contour`] for the boundary and slab rules). `slab_mm` is the
    /// thickness a contour stands for (the image slice spacing); `None` means
    /// one grid slice.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the ROI has no closed contour, or a
    /// contour is not parallel to the grid's slices.
    pub fn rasterize(&self, grid: &Grid, slab_mm: Option<f64>) -> Result<Structure> {
        if !self.has_volume() {
            return Err(Error::input(
                format!("ROI {} \"{}\"", self.number, self.name),
                "has no CLOSED_PLANAR contour to rasterize",
            ));
        }
        let polys: Vec<Vec<PointMm>> = self
            .contours
            .iter()
            .filter(|c| c.kind == ContourKind::ClosedPlanar)
            .map(|c| c.points_mm.clone())
            .collect();
        let what = format!("ROI {} \"{}\"", self.number, self.name);
        let mask = rasterize(&polys, grid, &what, slab_mm)?;
        let name = if self.name.trim().is_empty() {
            format!("ROI {}", self.number)
        } else {
            self.name.clone()
        };
        Ok(Structure::new(name, self.role(), mask)?)
    }
}

/// An RT Structure Set as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtStruct {
    /// Structure Set Label.
    pub label: String,
    /// Frame of reference of the (first) referenced frame.
    pub frame_of_reference_uid: Option<String>,
    /// Series Instance UID of the referenced image series, if stated.
    pub referenced_series_uid: Option<String>,
    /// Study Instance UID.
    pub study_uid: Option<String>,
    /// Patient.
    pub patient: PatientInfo,
    /// The ROIs, in file order.
    pub rois: Vec<Roi>,
}

impl RtStruct {
    /// The ROI with this name (exact match, then case-insensitive).
    pub fn roi(&self, name: &str) -> Option<&Roi> {
        self.rois
            .iter()
            .find(|r| r.name == name)
            .or_else(|| self.rois.iter().find(|r| r.name.eq_ignore_ascii_case(name)))
    }

    /// Smallest distance (mm) along `normal` between two distinct contour
    /// planes of any ROI: the image slice spacing the contours were drawn
    /// on. `None` if all contours lie in one plane.
    pub fn plane_spacing_mm(&self, normal: [f64; 3]) -> Option<f64> {
        let mut pos: Vec<f64> = self
            .rois
            .iter()
            .flat_map(|r| &r.contours)
            .filter(|c| c.kind == ContourKind::ClosedPlanar && !c.points_mm.is_empty())
            .map(|c| {
                let p = c.points_mm[0];
                p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]
            })
            .collect();
        pos.sort_by(f64::total_cmp);
        pos.windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&g| g > 0.05)
            .min_by(f64::total_cmp)
    }

    /// Every ROI with a volume, rasterized on `grid` with the slab of the
    /// structure set's own contour spacing along the grid's slice normal.
    /// ROIs without closed contours (points, open lines) are left out.
    ///
    /// # Errors
    /// As [`Roi::rasterize`].
    pub fn to_structures(&self, grid: &Grid) -> Result<Vec<Structure>> {
        let slab = self.plane_spacing_mm(grid.direction()[2]);
        self.rois
            .iter()
            .filter(|r| r.has_volume())
            .map(|r| r.rasterize(grid, slab))
            .collect()
    }
}

/// Reads an RT Structure Set.
///
/// # Errors
/// [`Error::WrongModality`] for another kind of file; [`Error::MissingTag`]
/// or [`Error::InvalidTag`] for a malformed one.
pub fn read_rtstruct(path: impl AsRef<Path>) -> Result<RtStruct> {
    let file = DicomFile::open(path.as_ref(), false)?;
    rtstruct_from(&file)
}

/// Reads an RT Structure Set from bytes in memory.
///
/// # Errors
/// As [`read_rtstruct`].
pub fn read_rtstruct_bytes(bytes: &[u8], name: &str) -> Result<RtStruct> {
    rtstruct_from(&DicomFile::from_bytes(bytes, name, false)?)
}

fn rtstruct_from(file: &DicomFile) -> Result<RtStruct> {
    file.require_modality("RTSTRUCT", "an RT Structure Set")?;
    let root = file.root();
    let mut frame = None;
    let mut series = None;
    for f in root.seq(tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE) {
        frame = frame.or_else(|| f.str(tags::FRAME_OF_REFERENCE_UID));
        for st in f.seq(tags::RT_REFERENCED_STUDY_SEQUENCE) {
            for se in st.seq(tags::RT_REFERENCED_SERIES_SEQUENCE) {
                series = series.or_else(|| se.str(tags::SERIES_INSTANCE_UID));
            }
        }
    }
    let mut rois: Vec<Roi> = Vec::new();
    let mut by_number: BTreeMap<i64, usize> = BTreeMap::new();
    for item in root.seq_req(
        tags::STRUCTURE_SET_ROI_SEQUENCE,
        "the ROIs of a structure set",
    )? {
        let number = roi_number(&item, tags::ROI_NUMBER)?;
        if by_number.insert(number, rois.len()).is_some() {
            return Err(item.invalid(
                tags::ROI_NUMBER,
                format!("ROI number {number} appears twice"),
            ));
        }
        rois.push(Roi {
            number,
            name: item.str(tags::ROI_NAME).unwrap_or_default(),
            interpreted_type: None,
            color: None,
            frame_of_reference_uid: item.str(tags::REFERENCED_FRAME_OF_REFERENCE_UID),
            contours: Vec::new(),
        });
    }
    for item in root.seq(tags::ROI_CONTOUR_SEQUENCE) {
        let number = roi_number(&item, tags::REFERENCED_ROI_NUMBER)?;
        let Some(&r) = by_number.get(&number) else {
            return Err(item.invalid(
                tags::REFERENCED_ROI_NUMBER,
                format!("ROI {number} is not in the Structure Set ROI Sequence"),
            ));
        };
        if let Some(c) = item.f64s(tags::ROI_DISPLAY_COLOR)?
            && c.len() == 3
            && c.iter().all(|v| (0.0..=255.0).contains(v))
        {
            rois[r].color = Some([c[0] as u8, c[1] as u8, c[2] as u8]);
        }
        for (n, ci) in item.seq(tags::CONTOUR_SEQUENCE).into_iter().enumerate() {
            rois[r].contours.push(read_contour(&ci, number, n)?);
        }
    }
    for item in root.seq(tags::RTROI_OBSERVATIONS_SEQUENCE) {
        let number = roi_number(&item, tags::REFERENCED_ROI_NUMBER)?;
        if let Some(&r) = by_number.get(&number) {
            rois[r].interpreted_type = item.str(tags::RTROI_INTERPRETED_TYPE);
        }
    }
    Ok(RtStruct {
        label: root.str(tags::STRUCTURE_SET_LABEL).unwrap_or_default(),
        frame_of_reference_uid: frame,
        referenced_series_uid: series,
        study_uid: root.str(tags::STUDY_INSTANCE_UID),
        patient: PatientInfo::read(&root),
        rois,
    })
}

fn roi_number(item: &Item<'_>, tag: dicom_core::Tag) -> Result<i64> {
    let v = item.f64_req(tag, "identifies the ROI")?;
    if v.fract() != 0.0 {
        return Err(item.invalid(tag, format!("{v} is not an integer")));
    }
    Ok(v as i64)
}

fn read_contour(item: &Item<'_>, roi: i64, n: usize) -> Result<Contour> {
    let ctx = format!("contour {n} of ROI {roi}");
    let kind = match item.str_req(tags::CONTOUR_GEOMETRIC_TYPE, &ctx)?.as_str() {
        "CLOSED_PLANAR" | "CLOSEDPLANAR_XOR" => ContourKind::ClosedPlanar,
        "OPEN_PLANAR" => ContourKind::OpenPlanar,
        "OPEN_NONPLANAR" => ContourKind::OpenNonplanar,
        "POINT" => ContourKind::Point,
        other => {
            return Err(item.invalid(
                tags::CONTOUR_GEOMETRIC_TYPE,
                format!("\"{other}\" in {ctx}"),
            ));
        }
    };
    let data = item.f64s_req(tags::CONTOUR_DATA, 0, &ctx)?;
    if data.len() % 3 != 0 {
        return Err(item.invalid(
            tags::CONTOUR_DATA,
            format!(
                "{} values in {ctx}: not a list of (x, y, z) points",
                data.len()
            ),
        ));
    }
    if let Some(np) = item.uint(tags::NUMBER_OF_CONTOUR_POINTS)?
        && np as usize != data.len() / 3
    {
        return Err(item.invalid(
            tags::NUMBER_OF_CONTOUR_POINTS,
            format!(
                "{np} points announced, {} in Contour Data ({ctx})",
                data.len() / 3
            ),
        ));
    }
    Ok(Contour {
        kind,
        points_mm: data.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
    })
}

/// The image series a structure set (or dose) refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencedSeries {
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Frame of Reference UID.
    pub frame_of_reference_uid: String,
    /// SOP Class UID of the images.
    pub sop_class_uid: String,
    /// SOP Instance UID of each image slice, by slice index `k`.
    pub slice_uids: Vec<String>,
}

impl ReferencedSeries {
    /// The identity of an image read from DICOM.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the image lacks a UID (e.g. from NIfTI).
    pub fn from_image(image: &Image) -> Result<Self> {
        let need = |v: &Option<String>, what: &str| {
            v.clone().ok_or_else(|| {
                Error::input(
                    "referenced image series",
                    format!("the image has no {what}: write it as DICOM first"),
                )
            })
        };
        Ok(Self {
            study_uid: need(&image.study_uid, "Study Instance UID")?,
            series_uid: need(&image.series_uid, "Series Instance UID")?,
            frame_of_reference_uid: need(&image.frame_of_reference_uid, "Frame of Reference UID")?,
            sop_class_uid: need(&image.sop_class_uid, "SOP Class UID")?,
            slice_uids: image.slice_uids.clone(),
        })
    }
}

impl From<&WrittenSeries> for ReferencedSeries {
    fn from(w: &WrittenSeries) -> Self {
        Self {
            study_uid: w.study_uid.clone(),
            series_uid: w.series_uid.clone(),
            frame_of_reference_uid: w.frame_of_reference_uid.clone(),
            sop_class_uid: w.sop_class_uid.clone(),
            slice_uids: w.slice_uids.clone(),
        }
    }
}

/// One ROI to write.
#[derive(Debug, Clone)]
pub struct RoiToWrite<'a> {
    /// The mask (its name becomes the ROI name).
    pub structure: &'a Structure,
    /// Display colour.
    pub color: [u8; 3],
    /// RT ROI Interpreted Type; `None` derives it from the role (target
    /// `PTV`, organ at risk `ORGAN`, external `EXTERNAL`, other empty).
    pub interpreted_type: Option<String>,
}

/// Options for [`write_rtstruct`].
#[derive(Debug, Clone, PartialEq)]
pub struct RtStructWriteOptions {
    /// Structure Set Label (at most 16 characters are kept).
    pub label: String,
    /// Patient.
    pub patient: PatientInfo,
    /// Series UID of the new structure set (`None`: a new one).
    pub series_uid: Option<String>,
    /// Transfer syntax.
    pub syntax: WriteSyntax,
}

impl Default for RtStructWriteOptions {
    fn default() -> Self {
        Self {
            label: "dosepaint".into(),
            patient: PatientInfo::default(),
            series_uid: None,
            syntax: WriteSyntax::default(),
        }
    }
}

/// Writes masks as an RT Structure Set referencing an image series: each
/// slice of each mask becomes closed planar contours (marching squares; see
/// [`crate::contour`]). When the masks' grid has one slice per referenced
/// image, every contour names its image in a Contour Image Sequence.
/// Returns the SOP Instance UID written.
///
/// # Errors
/// [`Error::InvalidInput`] for no ROI, masks on different grids or a grid
/// whose slices do not match the referenced images; I/O errors.
pub fn write_rtstruct(
    path: impl AsRef<Path>,
    reference: &ReferencedSeries,
    rois: &[RoiToWrite<'_>],
    options: &RtStructWriteOptions,
) -> Result<String> {
    let Some(first) = rois.first() else {
        return Err(Error::input("RT structure set", "no ROI to write"));
    };
    let grid = first.structure.grid();
    for r in rois {
        r.structure
            .grid()
            .ensure_same(grid, &format!("ROI \"{}\"", r.structure.name()))?;
    }
    let nz = grid.dims()[2];
    let per_slice_refs = !reference.slice_uids.is_empty();
    if per_slice_refs && reference.slice_uids.len() != nz {
        return Err(Error::input(
            "RT structure set",
            format!(
                "the masks have {nz} slices but the referenced series has {} images; \
                 rasterize on the image grid",
                reference.slice_uids.len()
            ),
        ));
    }
    let sop_instance = new_uid();
    let series_uid = options.series_uid.clone().unwrap_or_else(new_uid);
    let mut obj = InMemDicomObject::new_empty();
    Common {
        sop_class: uids::RT_STRUCTURE_SET_STORAGE,
        sop_instance: &sop_instance,
        modality: "RTSTRUCT",
        patient: &options.patient,
        study_uid: &reference.study_uid,
        series_uid: &series_uid,
        series_number: 1,
        series_description: "dosepaint structures",
        frame_of_reference_uid: None,
        instance_number: 1,
    }
    .put(&mut obj);
    let (date, time) = now_da_tm();
    let label: String = options.label.chars().take(16).collect();
    obj.put_str(tags::STRUCTURE_SET_LABEL, VR::SH, label);
    obj.put_str(tags::STRUCTURE_SET_DATE, VR::DA, date);
    obj.put_str(tags::STRUCTURE_SET_TIME, VR::TM, time);

    let image_ref = |k: usize| {
        let mut it = InMemDicomObject::new_empty();
        it.put_str(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            reference.sop_class_uid.clone(),
        );
        it.put_str(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            reference.slice_uids[k].clone(),
        );
        it
    };
    // Referenced Frame of Reference Sequence > study > series > images.
    let mut series_item = InMemDicomObject::new_empty();
    series_item.put_str(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        reference.series_uid.clone(),
    );
    series_item.put_seq(
        tags::CONTOUR_IMAGE_SEQUENCE,
        (0..reference.slice_uids.len()).map(image_ref).collect(),
    );
    let mut study_item = InMemDicomObject::new_empty();
    // Detached Study Management SOP Class, as conventional for this reference.
    study_item.put_str(
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.3.1.2.3.1",
    );
    study_item.put_str(
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        reference.study_uid.clone(),
    );
    study_item.put_seq(tags::RT_REFERENCED_SERIES_SEQUENCE, vec![series_item]);
    let mut frame_item = InMemDicomObject::new_empty();
    frame_item.put_str(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        reference.frame_of_reference_uid.clone(),
    );
    frame_item.put_seq(tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study_item]);
    obj.put_seq(
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![frame_item],
    );

    let mut roi_items = Vec::new();
    let mut contour_items = Vec::new();
    let mut observation_items = Vec::new();
    for (n, r) in rois.iter().enumerate() {
        let number = n as i64 + 1;
        let s = r.structure;
        let mut it = InMemDicomObject::new_empty();
        it.put_is(tags::ROI_NUMBER, number);
        it.put_str(
            tags::REFERENCED_FRAME_OF_REFERENCE_UID,
            VR::UI,
            reference.frame_of_reference_uid.clone(),
        );
        it.put_str(tags::ROI_NAME, VR::LO, s.name().to_string());
        it.put_str(tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC");
        roi_items.push(it);

        let mut contours = Vec::new();
        for k in 0..nz {
            for poly in contours_of_slice(s.mask(), k) {
                let mut c = InMemDicomObject::new_empty();
                if per_slice_refs {
                    c.put_seq(tags::CONTOUR_IMAGE_SEQUENCE, vec![image_ref(k)]);
                }
                c.put_str(tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR");
                c.put_is(tags::NUMBER_OF_CONTOUR_POINTS, poly.len() as i64);
                c.put_is(tags::CONTOUR_NUMBER, contours.len() as i64 + 1);
                let flat: Vec<f64> = poly.iter().flatten().copied().collect();
                c.put_ds(tags::CONTOUR_DATA, &flat);
                contours.push(c);
            }
        }
        let mut rc = InMemDicomObject::new_empty();
        rc.put_strs(
            tags::ROI_DISPLAY_COLOR,
            VR::IS,
            r.color.iter().map(u8::to_string).collect(),
        );
        rc.put_seq(tags::CONTOUR_SEQUENCE, contours);
        rc.put_is(tags::REFERENCED_ROI_NUMBER, number);
        contour_items.push(rc);

        let interpreted = r.interpreted_type.clone().unwrap_or_else(|| {
            match s.role() {
                StructureRole::Target => "PTV",
                StructureRole::OrganAtRisk => "ORGAN",
                StructureRole::External => "EXTERNAL",
                StructureRole::Other => "",
            }
            .to_string()
        });
        let mut ob = InMemDicomObject::new_empty();
        ob.put_is(tags::OBSERVATION_NUMBER, number);
        ob.put_is(tags::REFERENCED_ROI_NUMBER, number);
        ob.put_str(tags::RTROI_INTERPRETED_TYPE, VR::CS, interpreted);
        ob.put_str(tags::ROI_INTERPRETER, VR::PN, "");
        observation_items.push(ob);
    }
    obj.put_seq(tags::STRUCTURE_SET_ROI_SEQUENCE, roi_items);
    obj.put_seq(tags::ROI_CONTOUR_SEQUENCE, contour_items);
    obj.put_seq(tags::RTROI_OBSERVATIONS_SEQUENCE, observation_items);
    write_dataset(obj, path.as_ref(), options.syntax)?;
    Ok(sop_instance)
}
