//! RT Plan: photon beams with MLC control points, fraction group and
//! monitor units, written and read back.
//!
//! Monitor units per fraction of a beam are `W * MU_per_unit_weight / n`,
//! with `W` the beam's total weight (per course, `Sequence::total_weight`),
//! `n` the number of fractions and `MU_per_unit_weight` the machine
//! calibration that turns beamlet-weight units into MU (DESIGN.md: weight 1
//! on every beamlet of a 10 x 10 cm^2 field at SSD 100 cm gives 1 Gy at the
//! depth of maximum, so `MU_per_unit_weight` is the MU that deliver 1 Gy
//! there, e.g. 100 MU for a linac calibrated to 1 cGy/MU at dmax, SSD 100).

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dosepaint_core::{Aperture, Beam, ControlPoint, DeliveryKind, PatientPosition, Sequence};
use serde::{Deserialize, Serialize};

use super::PatientInfo;
use super::common::{Common, DicomFile, Item, Put, WriteSyntax, new_uid, now_da_tm, write_dataset};
use crate::{Error, Result};

/// One beam of a plan as stored in an RT Plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanBeam {
    /// Beam Number (300A,00C0).
    pub number: i64,
    /// Angles, isocentre and SAD.
    pub beam: Beam,
    /// Beam Meterset (300A,0086): MU per fraction.
    pub meterset_mu: f64,
    /// Nominal Beam Energy (300A,0114), MV.
    pub energy_mv: Option<f64>,
    /// Treatment Machine Name (300A,00B2).
    pub machine: String,
    /// MLCX Leaf Position Boundaries (300A,00BE): `n + 1` values, mm (empty
    /// when the beam has no MLC).
    pub leaf_boundaries_mm: Vec<f64>,
    /// Control points: cumulative meterset weight (normalised to end at 1)
    /// and MLCX leaf positions (X1 bank = `left_mm`, X2 = `right_mm`).
    pub control_points: Vec<ControlPoint>,
    /// X jaws (ASYMX or X) at the first control point, mm.
    pub jaws_x_mm: Option<[f64; 2]>,
    /// Y jaws (ASYMY or Y) at the first control point, mm.
    pub jaws_y_mm: Option<[f64; 2]>,
}

impl PlanBeam {
    /// The delivery as a core [`Sequence`] for beam `beam_index`, with the
    /// total weight `meterset_mu * fractions / mu_per_unit_weight`. Pairs of
    /// control points with identical leaves are read as step-and-shoot
    /// segments; anything else as a sliding-window trajectory.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without an MLC, with non-uniform leaf widths
    /// (a `Sequence` has one leaf width) or a non-positive calibration.
    pub fn to_sequence(
        &self,
        beam_index: usize,
        mu_per_unit_weight: f64,
        fractions: u32,
    ) -> Result<Sequence> {
        let what = format!("beam {} \"{}\"", self.number, self.beam.name());
        if !(mu_per_unit_weight.is_finite() && mu_per_unit_weight > 0.0) || fractions == 0 {
            return Err(Error::input(
                what,
                format!(
                    "MU per unit weight {mu_per_unit_weight} and fractions {fractions} must be positive"
                ),
            ));
        }
        let b = &self.leaf_boundaries_mm;
        if b.len() < 2 || self.control_points.is_empty() {
            return Err(Error::input(what, "has no MLC control points"));
        }
        let w = b[1] - b[0];
        if b.windows(2).any(|p| ((p[1] - p[0]) - w).abs() > 1e-3) || w <= 0.0 {
            return Err(Error::input(
                what,
                "leaf widths are not uniform; a dosepaint Sequence has one leaf width",
            ));
        }
        let n = b.len() - 1;
        let total_weight = self.meterset_mu * f64::from(fractions) / mu_per_unit_weight;
        let cps = &self.control_points;
        let paired = cps.len().is_multiple_of(2)
            && cps
                .chunks_exact(2)
                .all(|p| p[0].left_mm == p[1].left_mm && p[0].right_mm == p[1].right_mm);
        if paired {
            let apertures = cps
                .chunks_exact(2)
                .map(|p| Aperture {
                    left_mm: p[0].left_mm.clone(),
                    right_mm: p[0].right_mm.clone(),
                    weight: ((p[1].cumulative_meterset_weight - p[0].cumulative_meterset_weight)
                        * total_weight)
                        .max(0.0),
                })
                .collect();
            Ok(Sequence::step_and_shoot(
                beam_index,
                w,
                b[0] + w / 2.0,
                n,
                apertures,
            )?)
        } else {
            Ok(Sequence {
                beam: beam_index,
                leaf_width_mm: w,
                first_leaf_center_mm: b[0] + w / 2.0,
                kind: DeliveryKind::SlidingWindow,
                apertures: Vec::new(),
                trajectory: cps.clone(),
                total_weight,
            })
        }
    }
}

/// An RT Plan as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtPlan {
    /// RT Plan Label.
    pub label: String,
    /// Patient Position of the (first) patient setup.
    pub patient_position: Option<PatientPosition>,
    /// Number of Fractions Planned of the first fraction group.
    pub fractions: u32,
    /// The beams, in file order.
    pub beams: Vec<PlanBeam>,
    /// Frame of Reference UID.
    pub frame_of_reference_uid: Option<String>,
    /// Study Instance UID.
    pub study_uid: Option<String>,
    /// SOP Instance UID.
    pub sop_instance_uid: Option<String>,
    /// Referenced RT Structure Set.
    pub referenced_structure_set_uid: Option<String>,
    /// Patient.
    pub patient: PatientInfo,
}

/// What to write as an RT Plan.
#[derive(Debug, Clone)]
pub struct RtPlanToWrite<'a> {
    /// The beams (angles, isocentre, SAD).
    pub beams: &'a [Beam],
    /// One sequence per beam (`Sequence::beam` indexes `beams`).
    pub sequences: &'a [Sequence],
    /// Number of fractions.
    pub fractions: u32,
    /// Machine calibration: MU per unit beamlet weight (see the module docs).
    pub mu_per_unit_weight: f64,
    /// Patient position (stated explicitly: never assumed).
    pub patient_position: PatientPosition,
    /// RT Plan Label (at most 16 characters kept).
    pub label: String,
    /// Treatment Machine Name.
    pub machine: String,
    /// Nominal beam energy, MV.
    pub energy_mv: f64,
    /// Patient.
    pub patient: PatientInfo,
    /// Study UID (`None`: new).
    pub study_uid: Option<String>,
    /// Frame of reference of the planning CT.
    pub frame_of_reference_uid: Option<String>,
    /// The RT Structure Set the plan was made on (makes the plan geometry
    /// `PATIENT`; without one it is `TREATMENT_DEVICE`).
    pub referenced_structure_set_uid: Option<String>,
    /// Transfer syntax.
    pub syntax: WriteSyntax,
}

fn beam_meterset(seq: &Sequence, mu_per_unit_weight: f64, fractions: u32) -> f64 {
    seq.total_weight * mu_per_unit_weight / f64::from(fractions)
}

/// Writes a photon RT Plan: one fraction group, one beam per sequence with
/// ASYMX/ASYMY jaws (the envelope of the MLC openings) and an MLCX of the
/// sequence's leaf geometry, control points from
/// `Sequence::control_points` (cumulative weights 0..1), and Beam Meterset =
/// `total_weight * mu_per_unit_weight / fractions` MU. Returns the SOP
/// Instance UID.
///
/// # Errors
/// [`Error::InvalidInput`] for no beams, a beam without exactly one
/// sequence, an invalid control point, a beam that never opens, or a
/// non-positive calibration; I/O errors.
pub fn write_rtplan(path: impl AsRef<Path>, plan: &RtPlanToWrite<'_>) -> Result<String> {
    if plan.beams.is_empty() {
        return Err(Error::input("RT Plan", "no beams"));
    }
    if plan.fractions == 0
        || !(plan.mu_per_unit_weight.is_finite() && plan.mu_per_unit_weight > 0.0)
    {
        return Err(Error::input(
            "RT Plan",
            format!(
                "fractions {} and MU per unit weight {} must be positive",
                plan.fractions, plan.mu_per_unit_weight
            ),
        ));
    }
    if !(plan.energy_mv.is_finite() && plan.energy_mv > 0.0) {
        return Err(Error::input(
            "RT Plan",
            format!("beam energy {} MV", plan.energy_mv),
        ));
    }
    let mut seq_of: BTreeMap<usize, &Sequence> = BTreeMap::new();
    for s in plan.sequences {
        if s.beam >= plan.beams.len() || seq_of.insert(s.beam, s).is_some() {
            return Err(Error::input(
                "RT Plan sequences",
                format!("sequence for beam {} is out of range or repeated", s.beam),
            ));
        }
    }
    let sop_instance = new_uid();
    let study_uid = plan.study_uid.clone().unwrap_or_else(new_uid);
    let frame_uid = plan.frame_of_reference_uid.clone().unwrap_or_else(new_uid);
    let series_uid = new_uid();
    let mut obj = InMemDicomObject::new_empty();
    Common {
        sop_class: uids::RT_PLAN_STORAGE,
        sop_instance: &sop_instance,
        modality: "RTPLAN",
        patient: &plan.patient,
        study_uid: &study_uid,
        series_uid: &series_uid,
        series_number: 1,
        series_description: "dosepaint plan",
        frame_of_reference_uid: Some(&frame_uid),
        instance_number: 1,
    }
    .put(&mut obj);
    let (date, time) = now_da_tm();
    obj.put_str(
        tags::RT_PLAN_LABEL,
        VR::SH,
        plan.label.chars().take(16).collect::<String>(),
    );
    obj.put_str(tags::RT_PLAN_DATE, VR::DA, date);
    obj.put_str(tags::RT_PLAN_TIME, VR::TM, time);
    if let Some(ss) = &plan.referenced_structure_set_uid {
        obj.put_str(tags::RT_PLAN_GEOMETRY, VR::CS, "PATIENT");
        let mut it = InMemDicomObject::new_empty();
        it.put_str(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            uids::RT_STRUCTURE_SET_STORAGE,
        );
        it.put_str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, ss.clone());
        obj.put_seq(tags::REFERENCED_STRUCTURE_SET_SEQUENCE, vec![it]);
    } else {
        obj.put_str(tags::RT_PLAN_GEOMETRY, VR::CS, "TREATMENT_DEVICE");
    }
    let mut setup = InMemDicomObject::new_empty();
    setup.put_str(
        tags::PATIENT_POSITION,
        VR::CS,
        plan.patient_position.as_dicom(),
    );
    setup.put_is(tags::PATIENT_SETUP_NUMBER, 1);
    obj.put_seq(tags::PATIENT_SETUP_SEQUENCE, vec![setup]);

    let mut beam_items = Vec::new();
    let mut ref_beams = Vec::new();
    for (b, beam) in plan.beams.iter().enumerate() {
        let number = b as i64 + 1;
        let what = format!("beam {b} \"{}\"", beam.name());
        let seq = seq_of
            .get(&b)
            .ok_or_else(|| Error::input(&what, "has no sequence"))?;
        let n = seq.n_leaf_pairs();
        let cps = seq.control_points();
        if n == 0 || cps.len() < 2 {
            return Err(Error::input(
                &what,
                "needs leaf pairs and at least two control points",
            ));
        }
        let mut last = 0.0;
        for (c, cp) in cps.iter().enumerate() {
            let ap = Aperture {
                left_mm: cp.left_mm.clone(),
                right_mm: cp.right_mm.clone(),
                weight: 0.0,
            };
            ap.validate(n)
                .map_err(|e| Error::input(format!("{what}, control point {c}"), e.to_string()))?;
            let w = cp.cumulative_meterset_weight;
            if !(w.is_finite() && (last - 1e-12..=1.0 + 1e-12).contains(&w)) {
                return Err(Error::input(
                    format!("{what}, control point {c}"),
                    format!("cumulative meterset weight {w} must rise from 0 to 1"),
                ));
            }
            last = w;
        }
        let mu = beam_meterset(seq, plan.mu_per_unit_weight, plan.fractions);
        if !(mu.is_finite() && mu > 0.0) {
            return Err(Error::input(
                &what,
                format!("meterset {mu} MU must be positive"),
            ));
        }
        let wdt = seq.leaf_width_mm;
        let y0 = seq.first_leaf_center_mm - wdt / 2.0;
        let boundaries: Vec<f64> = (0..=n).map(|r| y0 + r as f64 * wdt).collect();
        // Jaw envelope of all openings.
        let (mut xl, mut xr, mut ylo, mut yhi) =
            (f64::INFINITY, f64::NEG_INFINITY, usize::MAX, 0usize);
        for cp in &cps {
            for r in 0..n {
                if cp.right_mm[r] > cp.left_mm[r] {
                    xl = xl.min(cp.left_mm[r]);
                    xr = xr.max(cp.right_mm[r]);
                    ylo = ylo.min(r);
                    yhi = yhi.max(r);
                }
            }
        }
        if ylo == usize::MAX {
            return Err(Error::input(&what, "the MLC never opens"));
        }

        let mut it = InMemDicomObject::new_empty();
        it.put_str(tags::MANUFACTURER, VR::LO, "");
        it.put_str(tags::TREATMENT_MACHINE_NAME, VR::SH, plan.machine.clone());
        it.put_str(tags::PRIMARY_DOSIMETER_UNIT, VR::CS, "MU");
        it.put_ds(tags::SOURCE_AXIS_DISTANCE, &[beam.sad_mm()]);
        let device = |kind: &str, pairs: usize| {
            let mut d = InMemDicomObject::new_empty();
            d.put_str(tags::RT_BEAM_LIMITING_DEVICE_TYPE, VR::CS, kind.to_string());
            d.put_is(tags::NUMBER_OF_LEAF_JAW_PAIRS, pairs as i64);
            d
        };
        let mut mlc = device("MLCX", n);
        mlc.put_ds(tags::LEAF_POSITION_BOUNDARIES, &boundaries);
        it.put_seq(
            tags::BEAM_LIMITING_DEVICE_SEQUENCE,
            vec![device("ASYMX", 1), device("ASYMY", 1), mlc],
        );
        it.put_is(tags::BEAM_NUMBER, number);
        it.put_str(tags::BEAM_NAME, VR::LO, beam.name().to_string());
        it.put_str(
            tags::BEAM_TYPE,
            VR::CS,
            if cps.len() > 2 { "DYNAMIC" } else { "STATIC" },
        );
        it.put_str(tags::RADIATION_TYPE, VR::CS, "PHOTON");
        it.put_str(tags::TREATMENT_DELIVERY_TYPE, VR::CS, "TREATMENT");
        for tag in [
            tags::NUMBER_OF_WEDGES,
            tags::NUMBER_OF_COMPENSATORS,
            tags::NUMBER_OF_BOLI,
            tags::NUMBER_OF_BLOCKS,
        ] {
            it.put_is(tag, 0);
        }
        it.put_ds(tags::FINAL_CUMULATIVE_METERSET_WEIGHT, &[1.0]);
        it.put_is(tags::NUMBER_OF_CONTROL_POINTS, cps.len() as i64);
        it.put_is(tags::REFERENCED_PATIENT_SETUP_NUMBER, 1);
        let mlc_pos = |cp: &ControlPoint| {
            let mut d = InMemDicomObject::new_empty();
            d.put_str(tags::RT_BEAM_LIMITING_DEVICE_TYPE, VR::CS, "MLCX");
            let pos: Vec<f64> = cp.left_mm.iter().chain(&cp.right_mm).copied().collect();
            d.put_ds(tags::LEAF_JAW_POSITIONS, &pos);
            d
        };
        let mut cp_items = Vec::with_capacity(cps.len());
        for (c, cp) in cps.iter().enumerate() {
            let mut ci = InMemDicomObject::new_empty();
            ci.put_is(tags::CONTROL_POINT_INDEX, c as i64);
            if c == 0 {
                ci.put_ds(tags::NOMINAL_BEAM_ENERGY, &[plan.energy_mv]);
                let jaw = |kind: &str, a: f64, b: f64| {
                    let mut d = InMemDicomObject::new_empty();
                    d.put_str(tags::RT_BEAM_LIMITING_DEVICE_TYPE, VR::CS, kind.to_string());
                    d.put_ds(tags::LEAF_JAW_POSITIONS, &[a, b]);
                    d
                };
                ci.put_seq(
                    tags::BEAM_LIMITING_DEVICE_POSITION_SEQUENCE,
                    vec![
                        jaw("ASYMX", xl, xr),
                        jaw("ASYMY", boundaries[ylo], boundaries[yhi + 1]),
                        mlc_pos(cp),
                    ],
                );
                ci.put_ds(tags::GANTRY_ANGLE, &[beam.gantry_deg()]);
                ci.put_str(tags::GANTRY_ROTATION_DIRECTION, VR::CS, "NONE");
                ci.put_ds(tags::BEAM_LIMITING_DEVICE_ANGLE, &[beam.collimator_deg()]);
                ci.put_str(
                    tags::BEAM_LIMITING_DEVICE_ROTATION_DIRECTION,
                    VR::CS,
                    "NONE",
                );
                ci.put_ds(tags::PATIENT_SUPPORT_ANGLE, &[beam.couch_deg()]);
                ci.put_str(tags::PATIENT_SUPPORT_ROTATION_DIRECTION, VR::CS, "NONE");
                ci.put_ds(tags::TABLE_TOP_ECCENTRIC_ANGLE, &[0.0]);
                ci.put_str(tags::TABLE_TOP_ECCENTRIC_ROTATION_DIRECTION, VR::CS, "NONE");
                ci.put_str(tags::TABLE_TOP_VERTICAL_POSITION, VR::DS, "");
                ci.put_str(tags::TABLE_TOP_LONGITUDINAL_POSITION, VR::DS, "");
                ci.put_str(tags::TABLE_TOP_LATERAL_POSITION, VR::DS, "");
                ci.put_ds(tags::ISOCENTER_POSITION, &beam.isocenter_mm());
            } else {
                ci.put_seq(
                    tags::BEAM_LIMITING_DEVICE_POSITION_SEQUENCE,
                    vec![mlc_pos(cp)],
                );
            }
            ci.put_ds(
                tags::CUMULATIVE_METERSET_WEIGHT,
                &[cp.cumulative_meterset_weight],
            );
            cp_items.push(ci);
        }
        it.put_seq(tags::CONTROL_POINT_SEQUENCE, cp_items);
        beam_items.push(it);

        let mut rb = InMemDicomObject::new_empty();
        rb.put_ds(tags::BEAM_METERSET, &[mu]);
        rb.put_is(tags::REFERENCED_BEAM_NUMBER, number);
        ref_beams.push(rb);
    }
    let mut fg = InMemDicomObject::new_empty();
    fg.put_is(tags::FRACTION_GROUP_NUMBER, 1);
    fg.put_is(tags::NUMBER_OF_FRACTIONS_PLANNED, i64::from(plan.fractions));
    fg.put_is(tags::NUMBER_OF_BEAMS, plan.beams.len() as i64);
    fg.put_is(tags::NUMBER_OF_BRACHY_APPLICATION_SETUPS, 0);
    fg.put_seq(tags::REFERENCED_BEAM_SEQUENCE, ref_beams);
    obj.put_seq(tags::FRACTION_GROUP_SEQUENCE, vec![fg]);
    obj.put_seq(tags::BEAM_SEQUENCE, beam_items);
    write_dataset(obj, path.as_ref(), plan.syntax)?;
    Ok(sop_instance)
}

/// Reads an RT Plan: beams (angles, isocentre, SAD, energy), MLCX control
/// points and jaws, meterset per beam and fractions of the first fraction
/// group.
///
/// # Errors
/// [`Error::WrongModality`]; [`Error::MissingTag`] / [`Error::InvalidTag`];
/// [`Error::Unsupported`] for arcs (gantry angle changing within a beam).
pub fn read_rtplan(path: impl AsRef<Path>) -> Result<RtPlan> {
    rtplan_from(&DicomFile::open(path.as_ref(), false)?)
}

/// Reads an RT Plan from bytes in memory.
///
/// # Errors
/// As [`read_rtplan`].
pub fn read_rtplan_bytes(bytes: &[u8], name: &str) -> Result<RtPlan> {
    rtplan_from(&DicomFile::from_bytes(bytes, name, false)?)
}

fn rtplan_from(file: &DicomFile) -> Result<RtPlan> {
    file.require_modality("RTPLAN", "an RT Plan")?;
    let root = file.root();
    let patient_position = match root
        .seq(tags::PATIENT_SETUP_SEQUENCE)
        .first()
        .and_then(|s| s.str(tags::PATIENT_POSITION))
    {
        Some(code) => Some(
            PatientPosition::from_dicom(&code)
                .map_err(|e| root.invalid(tags::PATIENT_POSITION, e.to_string()))?,
        ),
        None => None,
    };
    let mut meterset: BTreeMap<i64, f64> = BTreeMap::new();
    let mut fractions = 0u32;
    if let Some(fg) = root.seq(tags::FRACTION_GROUP_SEQUENCE).first() {
        let f = fg.uint(tags::NUMBER_OF_FRACTIONS_PLANNED)?.unwrap_or(0);
        fractions = u32::try_from(f)
            .map_err(|_| fg.invalid(tags::NUMBER_OF_FRACTIONS_PLANNED, format!("{f}")))?;
        for rb in fg.seq(tags::REFERENCED_BEAM_SEQUENCE) {
            let n = rb.uint_req(tags::REFERENCED_BEAM_NUMBER, "fraction group beam")?;
            if let Some(mu) = rb.f64(tags::BEAM_METERSET)? {
                meterset.insert(n as i64, mu);
            }
        }
    }
    let mut beams = Vec::new();
    for item in root.seq_req(tags::BEAM_SEQUENCE, "an RT Plan's beams")? {
        beams.push(read_beam(&item, &meterset)?);
    }
    let referenced_structure_set_uid = root
        .seq(tags::REFERENCED_STRUCTURE_SET_SEQUENCE)
        .first()
        .and_then(|i| i.str(tags::REFERENCED_SOP_INSTANCE_UID));
    Ok(RtPlan {
        label: root.str(tags::RT_PLAN_LABEL).unwrap_or_default(),
        patient_position,
        fractions,
        beams,
        frame_of_reference_uid: root.str(tags::FRAME_OF_REFERENCE_UID),
        study_uid: root.str(tags::STUDY_INSTANCE_UID),
        sop_instance_uid: root.str(tags::SOP_INSTANCE_UID),
        referenced_structure_set_uid,
        patient: PatientInfo::read(&root),
    })
}

fn read_beam(item: &Item<'_>, meterset: &BTreeMap<i64, f64>) -> Result<PlanBeam> {
    let number = item.uint_req(tags::BEAM_NUMBER, "identifies the beam")? as i64;
    let name = item
        .str(tags::BEAM_NAME)
        .unwrap_or_else(|| format!("Beam {number}"));
    let ctx = format!("beam {number}");
    let sad = item
        .f64(tags::SOURCE_AXIS_DISTANCE)?
        .unwrap_or(Beam::DEFAULT_SAD_MM);
    let mut boundaries = Vec::new();
    let mut n_pairs = 0usize;
    for d in item.seq(tags::BEAM_LIMITING_DEVICE_SEQUENCE) {
        let kind = d
            .str(tags::RT_BEAM_LIMITING_DEVICE_TYPE)
            .unwrap_or_default();
        if kind == "MLCX" {
            n_pairs = d.uint_req(tags::NUMBER_OF_LEAF_JAW_PAIRS, &ctx)? as usize;
            boundaries = d.f64s_req(tags::LEAF_POSITION_BOUNDARIES, n_pairs + 1, &ctx)?;
        } else if kind == "MLCY" {
            return Err(Error::Unsupported {
                path: item.path.to_string(),
                reason: format!("{ctx} has an MLCY (leaves along Y); only MLCX is read"),
            });
        }
    }
    let cps = item.seq_req(tags::CONTROL_POINT_SEQUENCE, &ctx)?;
    let cp0 = cps[0];
    let gantry = cp0.f64_req(tags::GANTRY_ANGLE, "first control point")?;
    let collimator = cp0.f64(tags::BEAM_LIMITING_DEVICE_ANGLE)?.unwrap_or(0.0);
    let couch = cp0.f64(tags::PATIENT_SUPPORT_ANGLE)?.unwrap_or(0.0);
    let iso = cp0.f64s_req(tags::ISOCENTER_POSITION, 3, "first control point")?;
    let energy_mv = cp0.f64(tags::NOMINAL_BEAM_ENERGY)?;
    let final_weight = item
        .f64(tags::FINAL_CUMULATIVE_METERSET_WEIGHT)?
        .unwrap_or(1.0);
    if final_weight <= 0.0 {
        return Err(item.invalid(
            tags::FINAL_CUMULATIVE_METERSET_WEIGHT,
            format!("{final_weight}"),
        ));
    }
    let mut jaws_x = None;
    let mut jaws_y = None;
    let mut leaves: Option<(Vec<f64>, Vec<f64>)> = None;
    let mut control_points = Vec::with_capacity(cps.len());
    for (c, cp) in cps.iter().enumerate() {
        if c > 0
            && let Some(g) = cp.f64(tags::GANTRY_ANGLE)?
            && (g - gantry).abs() > 1e-6
        {
            return Err(Error::Unsupported {
                path: item.path.to_string(),
                reason: format!("{ctx}: gantry angle changes within the beam (arc delivery)"),
            });
        }
        for d in cp.seq(tags::BEAM_LIMITING_DEVICE_POSITION_SEQUENCE) {
            let kind = d
                .str(tags::RT_BEAM_LIMITING_DEVICE_TYPE)
                .unwrap_or_default();
            let pos = d.f64s_req(tags::LEAF_JAW_POSITIONS, 0, &ctx)?;
            match kind.as_str() {
                "MLCX" => {
                    if pos.len() != 2 * n_pairs {
                        return Err(d.invalid(
                            tags::LEAF_JAW_POSITIONS,
                            format!(
                                "{} values for {n_pairs} leaf pairs ({ctx}, control point {c})",
                                pos.len()
                            ),
                        ));
                    }
                    leaves = Some((pos[..n_pairs].to_vec(), pos[n_pairs..].to_vec()));
                }
                "X" | "ASYMX" if c == 0 && pos.len() == 2 => jaws_x = Some([pos[0], pos[1]]),
                "Y" | "ASYMY" if c == 0 && pos.len() == 2 => jaws_y = Some([pos[0], pos[1]]),
                _ => {}
            }
        }
        let w = cp.f64_req(
            tags::CUMULATIVE_METERSET_WEIGHT,
            &format!("{ctx}, control point {c}"),
        )?;
        if let Some((l, r)) = &leaves {
            control_points.push(ControlPoint {
                cumulative_meterset_weight: w / final_weight,
                left_mm: l.clone(),
                right_mm: r.clone(),
            });
        }
    }
    let beam =
        Beam::new(name, gantry, couch, collimator, [iso[0], iso[1], iso[2]])?.with_sad_mm(sad)?;
    Ok(PlanBeam {
        number,
        beam,
        meterset_mu: meterset.get(&number).copied().unwrap_or(0.0),
        energy_mv,
        machine: item.str(tags::TREATMENT_MACHINE_NAME).unwrap_or_default(),
        leaf_boundaries_mm: boundaries,
        control_points,
        jaws_x_mm: jaws_x,
        jaws_y_mm: jaws_y,
    })
}
