#!/usr/bin/env python3
"""Reads the DICOM files written by dosepaint-io's writers with pydicom and
checks that pydicom finds the same values (not run by CI).

    cargo run -p dosepaint-io --example write_check_set -- /tmp/dp-check
    pip install pydicom numpy
    python3 crates/dosepaint-io/scripts/check_dicom_with_pydicom.py /tmp/dp-check

Exit status 0 when every check passes.
"""
import json
import os
import sys

import numpy as np
import pydicom

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def main(d):
    exp = json.load(open(os.path.join(d, "expected.json")))

    # CT series: HU = stored * slope + intercept, geometry per slice.
    e = exp["ct"]
    total = 0
    for k, name in enumerate(e["files"]):
        ds = pydicom.dcmread(os.path.join(d, "ct", name))
        hu = ds.pixel_array.astype(np.int64) * int(float(ds.RescaleSlope)) + int(float(ds.RescaleIntercept))
        total += int(hu.sum())
        if k == 0:
            check(hu.ravel().tolist() == e["hu_slice0"], "CT slice 0 HU values")
            check(ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2", "CT SOP class")
            check(ds.PatientPosition == "HFS", "CT patient position")
        check(np.allclose([float(v) for v in ds.ImagePositionPatient], e["origin_k"][k], atol=1e-6), f"CT IPP slice {k}")
        check(np.allclose([float(v) for v in ds.PixelSpacing], e["pixel_spacing"]), f"CT pixel spacing slice {k}")
        check(ds.FrameOfReferenceUID == e["frame_of_reference_uid"], f"CT frame of reference slice {k}")
    check(total == e["hu_sum"], "CT HU sum over the series")

    # PET (explicit VR big endian): Bq/mL within 16-bit quantisation.
    e = exp["pet"]
    ds = pydicom.dcmread(os.path.join(d, "pet", e["files"][0]))
    check(ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2", "PET written big endian")
    bq = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    want = np.array(e["bq_slice0"]).reshape(bq.shape)
    check(np.abs(bq - want).max() <= want.max() / 32767, "PET Bq/mL slice 0")
    check(ds.Units == "BQML" and ds.DecayCorrection == "START", "PET units and decay correction")
    check(float(ds.PatientWeight) == e["weight_kg"], "PET patient weight")
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    check(float(rp.RadionuclideTotalDose) == e["injected_bq"], "PET injected activity")

    # RTSTRUCT: ROI, colour, references, contours on 4 slices.
    e = exp["rtstruct"]
    ds = pydicom.dcmread(os.path.join(d, "rtstruct.dcm"))
    check(ds.StructureSetROISequence[0].ROIName == e["roi"], "RTSTRUCT ROI name")
    check([int(v) for v in ds.ROIContourSequence[0].ROIDisplayColor] == e["color"], "RTSTRUCT colour")
    refs = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    check(refs.SeriesInstanceUID == e["series_uid"], "RTSTRUCT referenced series")
    zs = {round(float(c.ContourData[2]), 3) for c in ds.ROIContourSequence[0].ContourSequence}
    check(len(zs) == e["slices_with_contours"], "RTSTRUCT contour planes")
    for c in ds.ROIContourSequence[0].ContourSequence:
        n = int(c.NumberOfContourPoints)
        if len(c.ContourData) != 3 * n or c.ContourGeometricType != "CLOSED_PLANAR":
            check(False, "RTSTRUCT contour data length")
            break
    check(ds.RTROIObservationsSequence[0].RTROIInterpretedType == "PTV", "RTSTRUCT interpreted type")

    # RTDOSE: Gy = pixel * DoseGridScaling.
    e = exp["rtdose"]
    ds = pydicom.dcmread(os.path.join(d, "rtdose.dcm"))
    gy = ds.pixel_array.astype(float) * float(ds.DoseGridScaling)
    check(gy.shape == (e["frames"], e["rows"], e["cols"]), "RTDOSE shape (frames, rows, cols)")
    want = np.array(e["values"]).reshape(gy.shape)
    check(np.abs(gy - want).max() <= float(ds.DoseGridScaling), "RTDOSE values in Gy")
    check(ds.DoseSummationType == "PLAN" and ds.DoseUnits == "GY", "RTDOSE summation and units")
    check(ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == e["plan_uid"], "RTDOSE plan reference")
    check([float(v) for v in ds.GridFrameOffsetVector] == [3.0 * k for k in range(e["frames"])], "RTDOSE frame offsets")

    # RTPLAN: fractions, MU, angles, leaves.
    e = exp["rtplan"]
    ds = pydicom.dcmread(os.path.join(d, "rtplan.dcm"))
    fg = ds.FractionGroupSequence[0]
    check(int(fg.NumberOfFractionsPlanned) == e["fractions"], "RTPLAN fractions")
    mu = [float(b.BeamMeterset) for b in fg.ReferencedBeamSequence]
    check(np.allclose(mu, e["meterset"], rtol=1e-9), "RTPLAN beam meterset (MU per fraction)")
    check([float(b.ControlPointSequence[0].GantryAngle) for b in ds.BeamSequence] == e["gantry"], "RTPLAN gantry angles")
    mlc = [x for x in ds.BeamSequence[0].BeamLimitingDeviceSequence if x.RTBeamLimitingDeviceType == "MLCX"][0]
    check([float(v) for v in mlc.LeafPositionBoundaries] == e["leaf_boundaries"], "RTPLAN leaf boundaries")
    cps = ds.BeamSequence[0].ControlPointSequence
    check(float(cps[-1].CumulativeMetersetWeight) == 1.0, "RTPLAN final cumulative meterset weight")
    check(ds.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == e["structure_set_uid"], "RTPLAN structure set reference")

    # REG (deflated): the matrix.
    e = exp["reg"]
    ds = pydicom.dcmread(os.path.join(d, "reg.dcm"))
    m = ds.RegistrationSequence[0].MatrixRegistrationSequence[0].MatrixSequence[0]
    got = np.array([float(v) for v in m.FrameOfReferenceTransformationMatrix]).reshape(4, 4)
    check(np.allclose(got, np.array(e["matrix"]), atol=1e-12), "REG matrix")
    check(m.FrameOfReferenceTransformationMatrixType == "RIGID", "REG matrix type")

    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "dosepaint-check"))
