//! Fuzz target: the DICOM data set reader (with and without preamble and
//! file meta group) and the typed readers built on it.
#![no_main]

use dosepaint_io::RtDoseReadOptions;
use dosepaint_io::dicom::{
    decode_pixel_bytes, parse_dataset_bytes, read_registration_bytes, read_rtdose_bytes,
    read_rtplan_bytes, read_rtstruct_bytes,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_dataset_bytes(data, "fuzz");
    let _ = decode_pixel_bytes(data, "fuzz");
    let _ = read_rtdose_bytes(data, "fuzz", &RtDoseReadOptions::default());
    let _ = read_rtstruct_bytes(data, "fuzz");
    let _ = read_rtplan_bytes(data, "fuzz");
    let _ = read_registration_bytes(data, "fuzz");
});
