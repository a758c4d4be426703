//! Fuzz target: NIfTI-1/2 header parsing and the whole in-memory reader.
//! Any input must give `Ok` or `Err`, never a panic or a huge allocation.
#![no_main]

use dosepaint_io::NiftiReadOptions;
use dosepaint_io::nifti::{NiftiHeader, read_nifti_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = NiftiHeader::parse(data, "fuzz");
    let _ = read_nifti_bytes(data, "fuzz", &NiftiReadOptions::default());
});
