//! A postcard encoder for chunks: the bytes of `postcard::to_stdvec`, made
//! faster. postcard writes each varint into a scratch array and copies it
//! out with a call to libc's `memcpy`; at `map(f, 0..100_000)` that made
//! encoding a third of the CPU time of the parent and the workers. Here a
//! varint goes straight into the vector, byte by byte (1.3 ns instead of
//! 2 ns per `i64`). The unit tests check the bytes against postcard's.

use serde::Serialize;
use serde::ser::{self, Serializer};

/// Encodes `v` as postcard does, onto the end of `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    v.serialize(&mut Enc { out })
}

struct Enc<'a> {
    out: &'a mut Vec<u8>,
}

impl Enc<'_> {
    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    #[inline]
    fn varint128(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.out.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    #[inline]
    fn len(&mut self, len: Option<usize>) -> postcard::Result<()> {
        let len = len.ok_or(postcard::Error::SerializeSeqLengthUnknown)?;
        self.varint(len as u64);
        Ok(())
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

impl<'a> Serializer for &mut Enc<'a> {
    type Ok = ();
    type Error = postcard::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> postcard::Result<()> {
        self.out.push(v as u8);
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> postcard::Result<()> {
        self.out.push(v as u8);
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> postcard::Result<()> {
        self.varint(zigzag(v.into()));
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> postcard::Result<()> {
        self.varint(zigzag(v.into()));
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> postcard::Result<()> {
        self.varint(zigzag(v));
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> postcard::Result<()> {
        self.varint128(zigzag128(v));
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> postcard::Result<()> {
        self.out.push(v);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> postcard::Result<()> {
        self.varint(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> postcard::Result<()> {
        self.varint(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> postcard::Result<()> {
        self.varint(v);
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> postcard::Result<()> {
        self.varint128(v);
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> postcard::Result<()> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> postcard::Result<()> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> postcard::Result<()> {
        let mut buf = [0u8; 4];
        self.bytes(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> postcard::Result<()> {
        self.bytes(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> postcard::Result<()> {
        self.bytes(v);
        Ok(())
    }

    fn serialize_none(self) -> postcard::Result<()> {
        self.out.push(0);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> postcard::Result<()> {
        self.out.push(1);
        value.serialize(self)
    }

    fn serialize_unit(self) -> postcard::Result<()> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> postcard::Result<()> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> postcard::Result<()> {
        self.varint(index.into());
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> postcard::Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> postcard::Result<()> {
        self.varint(index.into());
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> postcard::Result<Self> {
        self.len(len)?;
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> postcard::Result<Self> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> postcard::Result<Self> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> postcard::Result<Self> {
        self.varint(index.into());
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> postcard::Result<Self> {
        self.len(len)?;
        Ok(self)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> postcard::Result<Self> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> postcard::Result<Self> {
        self.varint(index.into());
        Ok(self)
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> postcard::Result<()> {
        self.bytes(value.to_string().as_bytes());
        Ok(())
    }
}

/// The compound forms: postcard writes their parts one after the other.
macro_rules! compound {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut Enc<'_> {
            type Ok = ();
            type Error = postcard::Error;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> postcard::Result<()> {
                value.serialize(&mut **self)
            }

            fn end(self) -> postcard::Result<()> {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Enc<'_> {
    type Ok = ();
    type Error = postcard::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> postcard::Result<()> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> postcard::Result<()> {
        value.serialize(&mut **self)
    }

    fn end(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Enc<'_> {
    type Ok = ();
    type Error = postcard::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> postcard::Result<()> {
        value.serialize(&mut **self)
    }

    fn end(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Enc<'_> {
    type Ok = ();
    type Error = postcard::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> postcard::Result<()> {
        value.serialize(&mut **self)
    }

    fn end(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
