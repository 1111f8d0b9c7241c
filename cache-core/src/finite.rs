//! Finds a NaN or infinite float in a value, which JSON cannot represent: `serde_json` would
//! write `null`, which then fails to read back as a number.

use std::fmt;

use serde::Serialize;
use serde::ser;

/// Whether `value` holds a float that is NaN or infinite, anywhere inside it.
pub(crate) fn has_non_finite_float<T: Serialize + ?Sized>(value: &T) -> bool {
    value.serialize(Finder).is_err()
}

/// The only error [`Finder`] reports: it found one.
#[derive(Debug)]
struct Found;

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a NaN or infinite float")
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Found
    }
}

/// A serializer that writes nothing and fails at the first non-finite float.
struct Finder;

fn float(value: f64) -> Result<(), Found> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Found)
    }
}

macro_rules! ignore {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), Found> { Ok(()) })*
    };
}

impl ser::Serializer for Finder {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_i128(i128); serialize_u8(u8); serialize_u16(u16);
        serialize_u32(u32); serialize_u64(u64); serialize_u128(u128); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<(), Found> {
        float(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), Found> {
        float(v)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Found> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Found> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Found> {
        Ok(self)
    }
}

/// Every compound part is checked the same way: each element, key and value in turn.
macro_rules! compound {
    ($($trait:ident :: $method:ident $(($($name:ident: $ty:ty),*))?;)*) => {
        $(impl ser::$trait for Finder {
            type Ok = ();
            type Error = Found;

            fn $method<T: Serialize + ?Sized>(&mut self, $($($name: $ty,)*)? value: &T) -> Result<(), Found> {
                value.serialize(Finder)
            }

            fn end(self) -> Result<(), Found> {
                Ok(())
            }
        })*
    };
}

compound! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
    SerializeStruct::serialize_field(_key: &'static str);
    SerializeStructVariant::serialize_field(_key: &'static str);
}

impl ser::SerializeMap for Finder {
    type Ok = ();
    type Error = Found;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Found> {
        key.serialize(Finder)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Found> {
        value.serialize(Finder)
    }

    fn end(self) -> Result<(), Found> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::has_non_finite_float;
    use std::collections::BTreeMap;

    #[test]
    fn finds_non_finite_floats_anywhere() {
        assert!(has_non_finite_float(&f64::NAN));
        assert!(has_non_finite_float(&f32::INFINITY));
        assert!(has_non_finite_float(&Some(vec![1.0, f64::NEG_INFINITY])));
        assert!(has_non_finite_float(&BTreeMap::from([(
            "a",
            (1, f64::NAN)
        )])));
        assert!(!has_non_finite_float(&(
            1.5,
            "x",
            None::<f64>,
            vec![0.0f32]
        )));
        assert!(!has_non_finite_float(&()));
    }
}
