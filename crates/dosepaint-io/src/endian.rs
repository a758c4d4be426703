//! Numbers stored in either byte order (NIfTI headers and voxels, DICOM
//! element headers and pixel words, `.npy` arrays).

/// The bytes of `b` in little-endian order: as they are, or reversed when
/// they were stored big-endian. Read a number with `T::from_le_bytes` of the
/// result, whatever order the source used.
///
/// # Panics
/// If `b` does not hold exactly `N` bytes (callers slice or chunk first).
pub(crate) fn little_endian<const N: usize>(b: &[u8], big: bool) -> [u8; N] {
    let mut a: [u8; N] = b.try_into().expect("slice of the number's size");
    if big {
        a.reverse();
    }
    a
}

#[cfg(test)]
mod tests {
    use super::little_endian;

    #[test]
    fn both_byte_orders_give_the_stored_number() {
        let v = -123_456_789i32;
        assert_eq!(
            i32::from_le_bytes(little_endian(&v.to_le_bytes(), false)),
            v
        );
        assert_eq!(i32::from_le_bytes(little_endian(&v.to_be_bytes(), true)), v);
        let x = -2.5e-7f64;
        let back = f64::from_le_bytes(little_endian(&x.to_be_bytes(), true));
        assert_eq!(back.to_bits(), x.to_bits());
    }
}
