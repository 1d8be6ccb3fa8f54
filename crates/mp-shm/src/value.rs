//! `Value`, `Array`, `RawValue` and `RawArray`: typed plain data in shared
//! memory, with or without a lock (Python's `sharedctypes`).
//!
//! Layout of a locked payload: the lock word at offset 0 (see
//! `lock/README.md`), the data from [`data_offset`]. Raw payloads hold the
//! data at offset 0.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{
    Error, ErrorKind, IndexError, LockResult, OwnerDied, TryLockError, TryLockResult,
};
use crate::lock::{LockGuard, word};
use crate::region::{self, Kind, PAYLOAD, Region, Shape, align_up};
use crate::sys;

/// Plain data that can live in shared memory.
///
/// # Safety
///
/// Implement it only for types where:
/// - every bit pattern of `size_of::<Self>()` bytes is a valid value
///   (another process may write any bytes; so not `bool`, `char`, enums or
///   references);
/// - the value holds no pointer, reference or handle (an address means
///   nothing in another process), so no `Box`, `Vec`, `String`, `&T`;
/// - the layout is fixed (`#[repr(C)]` or `#[repr(transparent)]` for
///   structs), so that every process agrees on it.
///
/// ```
/// # use mp_shm::Plain;
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
/// // SAFETY: two f64s, repr(C): any bits are a valid Point, no pointers.
/// unsafe impl Plain for Point {}
///
/// let p = mp_shm::Value::new(Point { x: 1.0, y: 2.0 })?;
/// p.lock().expect("no owner died").y += 1.0;
/// assert_eq!(p.get().expect("no owner died").y, 3.0);
/// assert_eq!(p.get().expect("no owner died").x, 1.0);
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub unsafe trait Plain: Copy + Send + Sync + 'static {}

macro_rules! plain {
    ($($t:ty),*) => {
        $(
            // SAFETY: a primitive number: every bit pattern is valid, no pointers.
            unsafe impl Plain for $t {}
        )*
    };
}

plain!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// SAFETY: an array of plain values is plain: no padding between elements
// changes that, and every element accepts any bits.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// The largest alignment a mapping guarantees for the data: the payload
/// starts 64 bytes into a page.
const MAX_ALIGN: usize = PAYLOAD;

/// Where a locked payload's data starts: after the 4-byte lock word.
const fn data_offset<T>() -> usize {
    align_up(4, std::mem::align_of::<T>())
}

fn shape<T>(kind: Kind, locked: bool, count: usize) -> Result<Shape, Error> {
    let align = std::mem::align_of::<T>();
    if align > MAX_ALIGN {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("alignment {align} is above the {MAX_ALIGN} bytes shared memory gives"),
        ));
    }
    let data = std::mem::size_of::<T>()
        .checked_mul(count)
        .and_then(|d| d.checked_add(if locked { data_offset::<T>() } else { 0 }))
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "array too large"))?;
    Ok(Shape {
        kind,
        payload_len: data.max(4),
        elem_size: std::mem::size_of::<T>(),
        elem_align: align,
        count,
    })
}

fn same_type<T>(s: &Shape) -> bool {
    s.elem_size == std::mem::size_of::<T>() && s.elem_align == std::mem::align_of::<T>()
}

/// A typed region: the region plus where its data is.
struct Typed<T> {
    region: Region,
    len: usize,
    locked: bool,
    /// A lock given at creation, used instead of the region's own word
    /// (Python's `Value(code, v, lock=lock)`), which other values may
    /// share.
    shared: Option<crate::Lock>,
    _t: PhantomData<T>,
}

impl<T> Clone for Typed<T> {
    fn clone(&self) -> Typed<T> {
        Typed {
            region: self.region.clone(),
            len: self.len,
            locked: self.locked,
            shared: self.shared.clone(),
            _t: PhantomData,
        }
    }
}

/// What a `Value` or an `Array` serializes: its region's descriptor and
/// the shared lock it was given, if any.
#[derive(Deserialize)]
struct WireLocked {
    fd: mp_process::SharedFd,
    shared: Option<crate::Lock>,
}

impl<T: Plain> Typed<T> {
    fn create(kind: Kind, locked: bool, len: usize) -> Result<Typed<T>, Error> {
        let region = Region::create(shape::<T>(kind, locked, len)?)?;
        Ok(Typed {
            region,
            len,
            locked,
            shared: None,
            _t: PhantomData,
        })
    }

    fn attach<'de, D: Deserializer<'de>>(
        d: D,
        kind: Kind,
        locked: bool,
    ) -> Result<Typed<T>, D::Error> {
        let (region, shared) = if locked {
            let w = WireLocked::deserialize(d)?;
            let region = region::open_sized(w.fd.into_inner(), kind, same_type::<T>)
                .map_err(serde::de::Error::custom)?;
            (region, w.shared)
        } else {
            (region::deserialize_sized(d, kind, same_type::<T>)?, None)
        };
        let len = region_len::<T>(&region, locked);
        Ok(Typed {
            region,
            len,
            locked,
            shared,
            _t: PhantomData,
        })
    }

    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.locked {
            (&self.region, &self.shared).serialize(s)
        } else {
            self.region.serialize(s)
        }
    }

    fn data(&self) -> *mut T {
        let off = if self.locked { data_offset::<T>() } else { 0 };
        // SAFETY: the payload holds the data from `off` on (its shape was
        // made or checked for T), so the offset stays inside the mapping.
        unsafe { self.region.payload().add(off).cast() }
    }

    fn word(&self) -> &AtomicU32 {
        if let Some(lock) = &self.shared {
            return lock.word();
        }
        // SAFETY: locked payloads have their lock word at offset 0, used only
        // atomically.
        unsafe { self.region.atomic_u32(0) }
    }

    fn acquire(&self, deadline: Option<std::time::Instant>) -> TryLockResult<LockGuard<'_>> {
        let guard = || LockGuard::from_word(self.word());
        match word::lock(self.word(), sys::pid(), deadline) {
            word::Acquired::Locked => Ok(guard()),
            word::Acquired::OwnerDied(pid) => Err(OwnerDied::new(guard(), pid).into()),
            word::Acquired::TimedOut => Err(TryLockError::WouldBlock),
        }
    }

    fn lock(&self) -> LockResult<LockGuard<'_>> {
        loop {
            match self.acquire(None) {
                Ok(g) => return Ok(g),
                Err(TryLockError::OwnerDied(e)) => return Err(e),
                // No deadline: the word protocol never gives up.
                Err(TryLockError::WouldBlock) => continue,
            }
        }
    }
}

/// The element count a checked region holds.
fn region_len<T>(region: &Region, locked: bool) -> usize {
    let off = if locked { data_offset::<T>() } else { 0 };
    match std::mem::size_of::<T>() {
        0 => 0,
        size => region.payload_len().saturating_sub(off) / size,
    }
}

/// A `T` in shared memory with a lock: Python's `multiprocessing.Value`.
///
/// `let mut g = v.lock()?; *g += 1;` is the Rust form of
/// `with v.get_lock(): v.value += 1`. [`get`](Value::get) and
/// [`set`](Value::set) take the lock for one read or write each, so
/// `v.set(v.get()? + 1)` is *not* atomic, as in Python.
///
/// The lock is a [`Lock`](crate::Lock) (not re-entrant, unlike Python's
/// default RLock: a re-entrant guard would hand out two `&mut T`). A
/// process that dies holding it is reported as [`OwnerDied`].
///
/// ```
/// use mp_shm::Value;
///
/// let v = Value::new(10_i64)?;
/// *v.lock().expect("no owner died") += 5;
/// assert_eq!(v.get().expect("no owner died"), 15);
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub struct Value<T: Plain> {
    t: Typed<T>,
}

/// Holds a [`Value`]'s lock and gives access to the value.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Plain> {
    // Two words, no more: a third made the article's locked counter a
    // third slower (the guard no longer came back in registers).
    _guard: LockGuard<'a>,
    data: *mut T,
}

impl<T: Plain> Value<T> {
    /// Creates a shared value holding `v`.
    pub fn new(v: T) -> Result<Value<T>, Error> {
        let t = Typed::<T>::create(Kind::Value, true, 1)?;
        // SAFETY: the data is in bounds and aligned for T (shape checked the
        // alignment); no other process has the region yet.
        unsafe { t.data().write(v) };
        Ok(Value { t })
    }

    /// Acquires the lock, waiting as long as it takes.
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        let data = self.t.data();
        self.t
            .lock()
            .map(|g| self.make_guard(g, data))
            .map_err(|e| e.map(|g| self.make_guard(g, data)))
    }

    /// Creates a shared value holding `v`, guarded by `lock` instead of a
    /// lock of its own (Python's `Value(code, v, lock=lock)`). Values and
    /// arrays made with one lock are updated together under one guard:
    /// see [`ValueGuard::value`].
    ///
    /// ```
    /// use mp_shm::{Lock, Value};
    ///
    /// let lock = Lock::new()?;
    /// let from = Value::with_lock(100_i64, &lock)?;
    /// let to = Value::with_lock(0_i64, &lock)?;
    /// {
    ///     let mut g = from.lock().expect("no owner died");
    ///     *g -= 30;
    ///     *g.value(&to)? += 30; // under the same acquisition
    /// }
    /// assert_eq!((from.get().unwrap(), to.get().unwrap()), (70, 30));
    /// assert!(from.shared_lock().is_some_and(|l| l.same_as(&lock)));
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    pub fn with_lock(v: T, lock: &crate::Lock) -> Result<Value<T>, Error> {
        let mut value = Value::new(v)?;
        value.t.shared = Some(lock.clone());
        Ok(value)
    }

    /// The lock given to [`with_lock`](Value::with_lock) (Python's
    /// `get_lock()` for such a value); `None` when the value has a lock of
    /// its own.
    pub fn shared_lock(&self) -> Option<&crate::Lock> {
        self.t.shared.as_ref()
    }

    fn make_guard<'a>(&'a self, g: LockGuard<'a>, data: *mut T) -> ValueGuard<'a, T> {
        ValueGuard { _guard: g, data }
    }

    /// Acquires the lock, giving up after `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ValueGuard<'_, T>> {
        self.wrap(self.t.acquire(word::deadline(timeout)))
    }

    /// Acquires the lock if it is free now.
    pub fn try_lock(&self) -> TryLockResult<ValueGuard<'_, T>> {
        self.wrap(self.t.acquire(Some(std::time::Instant::now())))
    }

    fn wrap<'a>(&'a self, r: TryLockResult<LockGuard<'a>>) -> TryLockResult<ValueGuard<'a, T>> {
        let data = self.t.data();
        match r {
            Ok(g) => Ok(self.make_guard(g, data)),
            Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
            Err(TryLockError::OwnerDied(e)) => {
                Err(TryLockError::OwnerDied(e.map(|g| self.make_guard(g, data))))
            }
        }
    }

    /// Reads the value under the lock.
    pub fn get(&self) -> LockResult<T> {
        match self.lock() {
            Ok(g) => Ok(*g),
            Err(e) => {
                let v = **e.get_ref();
                Err(OwnerDied::new(v, e.pid()))
            }
        }
    }

    /// Writes the value under the lock.
    pub fn set(&self, v: T) -> LockResult<()> {
        match self.lock() {
            Ok(mut g) => {
                *g = v;
                Ok(())
            }
            Err(mut e) => {
                **e.get_mut() = v;
                Err(OwnerDied::new((), e.pid()))
            }
        }
    }
}

impl<T: Plain> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the data is in bounds and aligned for T, any bits are a
        // valid T (Plain), and the lock held by this guard keeps every other
        // cooperating user away while the reference lives.
        unsafe { &*self.data }
    }
}

impl<T: Plain> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the lock makes the access exclusive.
        unsafe { &mut *self.data }
    }
}

/// A `[T]` in shared memory with a lock: Python's `multiprocessing.Array`.
///
/// The guard of [`lock`](Array::lock) derefs to `[T]`. Zero-filled when
/// created with [`new`](Array::new); a process that dies holding the lock
/// is reported as [`OwnerDied`].
///
/// ```
/// use mp_shm::Array;
///
/// let a = Array::<f64>::from_slice(&[1.0, 2.0, 3.0])?;
/// a.lock().expect("no owner died")[1] = 20.0;
/// assert_eq!(a.to_vec().expect("no owner died"), [1.0, 20.0, 3.0]);
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub struct Array<T: Plain> {
    t: Typed<T>,
}

/// Holds an [`Array`]'s lock and gives access to its elements.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Plain> {
    _guard: LockGuard<'a>,
    data: *mut T,
    len: usize,
}

impl<T: Plain> Array<T> {
    /// Creates a zero-filled array of `len` elements.
    pub fn new(len: usize) -> Result<Array<T>, Error> {
        Ok(Array {
            t: Typed::create(Kind::Array, true, len)?,
        })
    }

    /// Creates a zero-filled array of `len` elements guarded by `lock`
    /// instead of a lock of its own (Python's `Array(code, n, lock=lock)`);
    /// see [`Value::with_lock`].
    pub fn with_lock(len: usize, lock: &crate::Lock) -> Result<Array<T>, Error> {
        let mut array = Array::new(len)?;
        array.t.shared = Some(lock.clone());
        Ok(array)
    }

    /// The lock given to [`with_lock`](Array::with_lock); `None` when the
    /// array has a lock of its own.
    pub fn shared_lock(&self) -> Option<&crate::Lock> {
        self.t.shared.as_ref()
    }

    /// Creates an array holding a copy of `items`.
    pub fn from_slice(items: &[T]) -> Result<Array<T>, Error> {
        let a = Array::new(items.len())?;
        // SAFETY: the data holds `items.len()` T's, aligned; no other process
        // has the region yet.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), a.t.data(), items.len()) };
        Ok(a)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.t.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.t.len == 0
    }

    fn make_guard<'a>(&'a self, g: LockGuard<'a>) -> ArrayGuard<'a, T> {
        ArrayGuard {
            _guard: g,
            data: self.t.data(),
            len: self.t.len,
        }
    }

    /// Acquires the lock, waiting as long as it takes.
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.t
            .lock()
            .map(|g| self.make_guard(g))
            .map_err(|e| e.map(|g| self.make_guard(g)))
    }

    /// Acquires the lock, giving up after `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ArrayGuard<'_, T>> {
        self.wrap(self.t.acquire(word::deadline(timeout)))
    }

    /// Acquires the lock if it is free now.
    pub fn try_lock(&self) -> TryLockResult<ArrayGuard<'_, T>> {
        self.wrap(self.t.acquire(Some(std::time::Instant::now())))
    }

    fn wrap<'a>(&'a self, r: TryLockResult<LockGuard<'a>>) -> TryLockResult<ArrayGuard<'a, T>> {
        match r {
            Ok(g) => Ok(self.make_guard(g)),
            Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
            Err(TryLockError::OwnerDied(e)) => {
                Err(TryLockError::OwnerDied(e.map(|g| self.make_guard(g))))
            }
        }
    }

    /// A copy of the elements, read under the lock.
    pub fn to_vec(&self) -> LockResult<Vec<T>> {
        match self.lock() {
            Ok(g) => Ok(g.to_vec()),
            Err(e) => {
                let v = e.get_ref().to_vec();
                Err(OwnerDied::new(v, e.pid()))
            }
        }
    }
}

impl<T: Plain> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` aligned T's live at `data` (the region's shape), any
        // bits are valid T's, and the lock keeps cooperating users away.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl<T: Plain> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the lock makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

/// Whether `other`'s lock word is `held`, the word of a guard. Handles on
/// one lock share one mapping in a process (the region registry), so the
/// same lock is the same address.
fn check_shared<U: Plain>(held: &AtomicU32, other: &Typed<U>) -> Result<(), Error> {
    if std::ptr::eq(held, other.word()) {
        Ok(())
    } else {
        Err(Error::new(
            crate::ErrorKind::InvalidArgument,
            "that value or array does not share this guard's lock",
        ))
    }
}

/// Reaching the other values and arrays made with the same lock
/// ([`Value::with_lock`], [`Array::with_lock`]) under one guard. Each
/// borrows the guard mutably, so one of them at a time is reachable.
macro_rules! shared_access {
    ($guard:ident) => {
        impl<'a, T: Plain> $guard<'a, T> {
            /// `other`, a value made with this guard's shared lock, under
            /// this guard; an error if it does not share the lock.
            pub fn value<'b, U: Plain>(
                &'b mut self,
                other: &'b Value<U>,
            ) -> Result<&'b mut U, Error> {
                check_shared(self._guard.word(), &other.t)?;
                // Borrowing the guard mutably keeps this the only reference
                // made through it (`other` may even be the guard's value).
                // SAFETY: in bounds and aligned for U, any bits are a valid
                // U, and this guard holds the lock that guards the data.
                Ok(unsafe { &mut *other.t.data() })
            }

            /// `other`, an array made with this guard's shared lock, under
            /// this guard; an error if it does not share the lock.
            pub fn array<'b, U: Plain>(
                &'b mut self,
                other: &'b Array<U>,
            ) -> Result<&'b mut [U], Error> {
                check_shared(self._guard.word(), &other.t)?;
                // SAFETY: as in `value`, for `len` U's.
                Ok(unsafe { std::slice::from_raw_parts_mut(other.t.data(), other.t.len) })
            }
        }
    };
}

shared_access!(ValueGuard);
shared_access!(ArrayGuard);

/// A `T` in shared memory without a lock: Python's `RawValue`.
///
/// Reads and writes are volatile copies; concurrent `set`s from several
/// processes race (the last write wins, read-modify-write loses updates).
/// Use a [`Value`] or a shared atomic when that matters.
///
/// ```
/// use mp_shm::RawValue;
///
/// let v = RawValue::new(1.5_f64)?;
/// v.set(v.get() * 2.0);
/// assert_eq!(v.get(), 3.0);
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub struct RawValue<T: Plain> {
    t: Typed<T>,
}

impl<T: Plain> RawValue<T> {
    /// Creates a shared value holding `v`.
    pub fn new(v: T) -> Result<RawValue<T>, Error> {
        let r = RawValue {
            t: Typed::create(Kind::RawValue, false, 1)?,
        };
        r.set(v);
        Ok(r)
    }

    /// Reads the value (a volatile copy: may tear under a concurrent write
    /// of a type wider than the machine word).
    pub fn get(&self) -> T {
        // SAFETY: the data is in bounds and aligned for T, any bits are a
        // valid T, and no reference to it exists (raw accesses only).
        unsafe { self.t.data().read_volatile() }
    }

    /// Writes the value.
    pub fn set(&self, v: T) {
        // SAFETY: as in `get`.
        unsafe { self.t.data().write_volatile(v) }
    }

    /// The value's address in this process.
    pub fn as_ptr(&self) -> *mut T {
        self.t.data()
    }
}

/// A `[T]` in shared memory without a lock: Python's `RawArray`.
///
/// ```
/// use mp_shm::RawArray;
///
/// let a = RawArray::<i32>::new(4)?;
/// a.set(2, 7)?;
/// assert_eq!(a.get(2), Some(7));
/// assert!(a.set(4, 1).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawArray<T: Plain> {
    t: Typed<T>,
}

impl<T: Plain> RawArray<T> {
    /// Creates a zero-filled array of `len` elements.
    pub fn new(len: usize) -> Result<RawArray<T>, Error> {
        Ok(RawArray {
            t: Typed::create(Kind::RawArray, false, len)?,
        })
    }

    /// Creates an array holding a copy of `items`.
    pub fn from_slice(items: &[T]) -> Result<RawArray<T>, Error> {
        let a = RawArray::new(items.len())?;
        a.copy_from_slice(0, items)
            .map_err(|_| Error::new(ErrorKind::InvalidArgument, "array length mismatch"))?;
        Ok(a)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.t.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.t.len == 0
    }

    /// Element `i`, or None past the end.
    pub fn get(&self, i: usize) -> Option<T> {
        // SAFETY: `i < len`, so the element is in bounds and aligned; any
        // bits are a valid T; raw accesses only.
        (i < self.t.len).then(|| unsafe { self.t.data().add(i).read_volatile() })
    }

    /// Writes element `i`.
    pub fn set(&self, i: usize, v: T) -> Result<(), IndexError> {
        if i >= self.t.len {
            return Err(IndexError {
                index: i,
                len: self.t.len,
            });
        }
        // SAFETY: as in `get`.
        unsafe { self.t.data().add(i).write_volatile(v) };
        Ok(())
    }

    /// Copies `src` into the array from index `start` on.
    pub fn copy_from_slice(&self, start: usize, src: &[T]) -> Result<(), IndexError> {
        self.check(start, src.len())?;
        // SAFETY: the range is in bounds (checked); `src` is a separate
        // allocation; raw accesses only, so a racing process can tear the
        // copy but invalidates no reference.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.t.data().add(start), src.len()) };
        Ok(())
    }

    /// Copies elements from index `start` on into `dst`.
    pub fn copy_to_slice(&self, start: usize, dst: &mut [T]) -> Result<(), IndexError> {
        self.check(start, dst.len())?;
        // SAFETY: as in `copy_from_slice`, the other way.
        unsafe {
            std::ptr::copy_nonoverlapping(self.t.data().add(start), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    fn check(&self, start: usize, n: usize) -> Result<(), IndexError> {
        match start.checked_add(n) {
            Some(end) if end <= self.t.len => Ok(()),
            _ => Err(IndexError {
                index: start.saturating_add(n),
                len: self.t.len,
            }),
        }
    }

    /// A copy of the elements.
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.t.len).filter_map(|i| self.get(i)).collect()
    }

    /// The first element's address in this process.
    pub fn as_ptr(&self) -> *mut T {
        self.t.data()
    }

    /// The elements, as a slice.
    ///
    /// # Safety
    ///
    /// - While the slice lives, no process or thread writes to the array.
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: `len` aligned T's; the caller promises no writer.
        unsafe { std::slice::from_raw_parts(self.t.data(), self.t.len) }
    }

    /// The elements, as a mutable slice.
    ///
    /// # Safety
    ///
    /// - While the slice lives, no other process, thread or slice reads or
    ///   writes the elements it covers.
    #[allow(
        clippy::mut_from_ref,
        reason = "shared memory: exclusivity is the caller's promise"
    )]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        // SAFETY: `len` aligned T's; the caller promises exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.t.data(), self.t.len) }
    }
}

macro_rules! typed_traits {
    ($name:ident, $kind:expr, $locked:expr) => {
        impl<T: Plain> Clone for $name<T> {
            fn clone(&self) -> $name<T> {
                $name { t: self.t.clone() }
            }
        }

        impl<T: Plain> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.t.serialize(s)
            }
        }

        impl<'de, T: Plain> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name<T>, D::Error> {
                Ok($name {
                    t: Typed::attach(d, $kind, $locked)?,
                })
            }
        }

        // SAFETY: the handle owns a shared mapping; T is Plain (Send + Sync),
        // and every access to the data goes through the lock or raw
        // volatile copies.
        unsafe impl<T: Plain> Send for $name<T> {}
        // SAFETY: as for Send.
        unsafe impl<T: Plain> Sync for $name<T> {}
    };
}

typed_traits!(Value, Kind::Value, true);
typed_traits!(Array, Kind::Array, true);
typed_traits!(RawValue, Kind::RawValue, false);
typed_traits!(RawArray, Kind::RawArray, false);

impl<T: Plain + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not `get`: Debug must not block on a held lock.
        match self.try_lock() {
            Ok(g) => f.debug_tuple("Value").field(&*g).finish(),
            Err(_) => f.write_str("Value(<locked>)"),
        }
    }
}

impl<T: Plain> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array").field("len", &self.len()).finish()
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

impl<T: Plain> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

impl<T: Plain> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayGuard")
            .field("len", &self.len)
            .finish()
    }
}
