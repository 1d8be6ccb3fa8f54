//! serde's messages, which postcard's error drops: a value is run again,
//! on the error path only, through a serializer that writes nothing but
//! keeps the message of a custom error, or through postcard's deserializer
//! wrapped so that every error the type's `Deserialize` makes is kept.
//!
//! The deserializer wrapper hands the type wrapped visitors, accesses and
//! seeds whose error type ([`Caught`]) holds a message. Where an error must
//! pass back through postcard (which turns every custom error into the
//! bare `SerdeDeCustom`), the message waits in a thread-local slot and is
//! taken back on the other side.

use std::cell::RefCell;
use std::fmt::{self, Display, Write as _};

use serde::de::{self, DeserializeOwned, DeserializeSeed, Expected, Visitor};
use serde::ser::{self, Serialize};

/// A message kept from a custom error.
#[derive(Debug)]
pub(crate) struct Caught(String);

impl Display for Caught {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Caught {}

impl ser::Error for Caught {
    fn custom<T: Display>(msg: T) -> Caught {
        Caught(msg.to_string())
    }
}

impl de::Error for Caught {
    fn custom<T: Display>(msg: T) -> Caught {
        Caught(msg.to_string())
    }
}

/// Runs `value`'s `Serialize` again, writing nothing; its custom error's
/// message, if it fails with one this time too.
pub(crate) fn serialize_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    value.serialize(Null).err().map(|c| c.0)
}

/// Decodes `bytes` as a `T` again, through the wrapper; the message of the
/// error the type's `Deserialize` (or the `deserialize_any` refusal) made.
pub(crate) fn deserialize_message<T: DeserializeOwned>(bytes: &[u8]) -> Option<String> {
    SLOT.with(|s| s.borrow_mut().take());
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let r = T::deserialize(De(&mut de)).err().map(|c| c.0);
    SLOT.with(|s| s.borrow_mut().take());
    r
}

thread_local! {
    /// A message on its way back through postcard.
    static SLOT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// An error from postcard, as the type sees it: the message that went
/// through postcard if there was one, else postcard's own.
fn lift<T, E: Display>(r: Result<T, E>) -> Result<T, Caught> {
    r.map_err(|e| {
        let kept = SLOT.with(|s| s.borrow_mut().take());
        Caught(kept.unwrap_or_else(|| e.to_string()))
    })
}

/// The type's error, on its way back through postcard.
fn lower<T, E: de::Error>(r: Result<T, Caught>) -> Result<T, E> {
    r.map_err(|c| {
        SLOT.with(|s| *s.borrow_mut() = Some(c.0));
        E::custom("")
    })
}

/// `expecting` of a visitor, as text.
fn expecting(v: &dyn Expected) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

// ----- the serializer that writes nothing -----

/// Serializes into nothing; only errors matter.
struct Null;

macro_rules! null_scalars {
    ($($m:ident: $t:ty),* $(,)?) => {
        $(fn $m(self, _: $t) -> Result<(), Caught> { Ok(()) })*
    };
}

impl ser::Serializer for Null {
    type Ok = ();
    type Error = Caught;
    type SerializeSeq = Null;
    type SerializeTuple = Null;
    type SerializeTupleStruct = Null;
    type SerializeTupleVariant = Null;
    type SerializeMap = Null;
    type SerializeStruct = Null;
    type SerializeStructVariant = Null;

    null_scalars!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str,
    );

    fn serialize_none(self) -> Result<(), Caught> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Caught> {
        v.serialize(Null)
    }
    fn serialize_unit(self) -> Result<(), Caught> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Caught> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Caught> {
        v.serialize(Null)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Caught> {
        v.serialize(Null)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Null, Caught> {
        Ok(Null)
    }
    fn serialize_tuple(self, _: usize) -> Result<Null, Caught> {
        Ok(Null)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Null, Caught> {
        Ok(Null)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Null, Caught> {
        Ok(Null)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Null, Caught> {
        Ok(Null)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Null, Caught> {
        Ok(Null)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Null, Caught> {
        Ok(Null)
    }
    fn collect_str<T: Display + ?Sized>(self, v: &T) -> Result<(), Caught> {
        // Not `to_string`, which panics when the Display impl fails.
        let mut s = String::new();
        write!(s, "{v}").map_err(|_| Caught("a Display impl failed (collect_str)".into()))
    }
    fn is_human_readable(&self) -> bool {
        // As postcard: a type may serialize differently for readable formats.
        false
    }
}

macro_rules! null_compound {
    ($($tr:ident: $m:ident),* $(,)?) => {$(
        impl ser::$tr for Null {
            type Ok = ();
            type Error = Caught;
            fn $m<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Caught> {
                v.serialize(Null)
            }
            fn end(self) -> Result<(), Caught> {
                Ok(())
            }
        }
    )*};
}

null_compound!(
    SerializeSeq: serialize_element,
    SerializeTuple: serialize_element,
    SerializeTupleStruct: serialize_field,
    SerializeTupleVariant: serialize_field,
);

impl ser::SerializeMap for Null {
    type Ok = ();
    type Error = Caught;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Caught> {
        k.serialize(Null)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Caught> {
        v.serialize(Null)
    }
    fn end(self) -> Result<(), Caught> {
        Ok(())
    }
}

/// The two struct forms, whose fields carry their names: the same nothing.
macro_rules! null_struct {
    ($($t:ident),* $(,)?) => {$(
        impl ser::$t for Null {
            type Ok = ();
            type Error = Caught;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _: &'static str,
                v: &T,
            ) -> Result<(), Caught> {
                v.serialize(Null)
            }
            fn end(self) -> Result<(), Caught> {
                Ok(())
            }
        }
    )*};
}

null_struct!(SerializeStruct, SerializeStructVariant);

// ----- the deserializer wrapper -----

/// A deserializer (postcard's, or one it hands out) seen with [`Caught`]
/// errors.
struct De<D>(D);

macro_rules! de_forward {
    ($($m:ident),* $(,)?) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Caught> {
            lift(self.0.$m(Vis(v)))
        }
    )*};
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for De<D> {
    type Error = Caught;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Caught> {
        // What postcard refuses, with what the visitor wanted.
        Err(Caught(super::any_reason(&expecting(&v))))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Caught> {
        Err(Caught(super::any_reason(&expecting(&v))))
    }

    de_forward!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Caught> {
        lift(self.0.deserialize_unit_struct(name, Vis(v)))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Caught> {
        lift(self.0.deserialize_newtype_struct(name, Vis(v)))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Caught> {
        lift(self.0.deserialize_tuple(len, Vis(v)))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, Caught> {
        lift(self.0.deserialize_tuple_struct(name, len, Vis(v)))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Caught> {
        lift(self.0.deserialize_struct(name, fields, Vis(v)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Caught> {
        lift(self.0.deserialize_enum(name, variants, Vis(v)))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// The type's visitor, called by postcard.
struct Vis<V>(V);

macro_rules! vis_forward {
    ($($m:ident: $t:ty),* $(,)?) => {$(
        fn $m<E: de::Error>(self, x: $t) -> Result<V::Value, E> {
            lower(self.0.$m(x))
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    vis_forward!(
        visit_bool: bool, visit_i8: i8, visit_i16: i16, visit_i32: i32, visit_i64: i64,
        visit_i128: i128, visit_u8: u8, visit_u16: u16, visit_u32: u32, visit_u64: u64,
        visit_u128: u128, visit_f32: f32, visit_f64: f64, visit_char: char, visit_str: &str,
        visit_borrowed_str: &'de str, visit_string: String, visit_bytes: &[u8],
        visit_borrowed_bytes: &'de [u8], visit_byte_buf: Vec<u8>,
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        lower(self.0.visit_none())
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        lower(self.0.visit_unit())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        lower(self.0.visit_some(De(d)))
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        lower(self.0.visit_newtype_struct(De(d)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        lower(self.0.visit_seq(Access(a)))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        lower(self.0.visit_map(Access(a)))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        lower(self.0.visit_enum(Access(a)))
    }
}

/// A seed of the type's, called by postcard.
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        lower(self.0.deserialize(De(d)))
    }
}

/// postcard's sequence, map, enum or variant access, as the type sees it.
struct Access<A>(A);

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Access<A> {
    type Error = Caught;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Caught> {
        lift(self.0.next_element_seed(Seed(seed)))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Access<A> {
    type Error = Caught;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Caught> {
        lift(self.0.next_key_seed(Seed(seed)))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Caught> {
        lift(self.0.next_value_seed(Seed(seed)))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Access<A> {
    type Error = Caught;
    type Variant = Variant<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Variant<A::Variant>), Caught> {
        lift(self.0.variant_seed(Seed(seed))).map(|(v, a)| (v, Variant(a)))
    }
}

/// postcard's variant access, as the type sees it.
struct Variant<A>(A);

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Variant<A> {
    type Error = Caught;

    fn unit_variant(self) -> Result<(), Caught> {
        lift(self.0.unit_variant())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Caught> {
        lift(self.0.newtype_variant_seed(Seed(seed)))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Caught> {
        lift(self.0.tuple_variant(len, Vis(v)))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Caught> {
        lift(self.0.struct_variant(fields, Vis(v)))
    }
}
