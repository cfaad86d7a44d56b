//! Rows for inserts in ClickHouse's `RowBinary` format: no text escaping at all, so no span
//! data is ever parsed as SQL or as a text format. Integers are little-endian, strings a
//! LEB128 length and their bytes, `FixedString(N)` N bytes, `Date` days since 1970 as UInt16,
//! `Array(T)` a LEB128 count and its items.

/// One insert's body, built column by column in the table's column order.
#[derive(Default)]
pub struct Rows {
    pub buf: Vec<u8>,
    pub count: usize,
}

impl Rows {
    /// Marks the end of a row.
    pub fn end_row(&mut self) {
        self.count += 1;
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `Date` from unix nanoseconds (days since 1970; ClickHouse's `Date` ends in 2149).
    pub fn date(&mut self, unix_nanos: u64) -> &mut Self {
        let days = unix_nanos / 86_400_000_000_000;
        self.buf
            .extend_from_slice(&u16::try_from(days).unwrap_or(u16::MAX).to_le_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.leb128(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// A `String` made of two parts (a prefix and a text), without joining them first.
    pub fn str_of(&mut self, prefix: &str, text: &str) -> &mut Self {
        self.leb128((prefix.len() + text.len()) as u64);
        self.buf.extend_from_slice(prefix.as_bytes());
        self.buf.extend_from_slice(text.as_bytes());
        self
    }

    /// A `FixedString(N)` of exactly `v.len()` bytes.
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// An `Array(FixedString(N))`.
    pub fn fixed_array<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a [u8]>) -> &mut Self {
        self.leb128(items.len() as u64);
        for item in items {
            self.buf.extend_from_slice(item);
        }
        self
    }

    /// An `Array(Int32)`.
    pub fn i32_array(&mut self, items: impl ExactSizeIterator<Item = i32>) -> &mut Self {
        self.leb128(items.len() as u64);
        for item in items {
            self.buf.extend_from_slice(&item.to_le_bytes());
        }
        self
    }

    /// An `Array(Int64)`.
    pub fn i64_array(&mut self, items: impl ExactSizeIterator<Item = i64>) -> &mut Self {
        self.leb128(items.len() as u64);
        for item in items {
            self.buf.extend_from_slice(&item.to_le_bytes());
        }
        self
    }

    fn leb128(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }
}

/// Rows sent in the order of their table's sort key rather than in the order they are made:
/// each row is encoded as it comes with its key, then the rows are put in key order.
/// ClickHouse checks whether an insert's rows are sorted already and skips sorting them
/// (`MergeTreeDataWriterBlocksAlreadySorted`, 18.16 included): the sort and the copy of every
/// column in the new order move to a cheaper sort of keys and row bytes here.
pub struct KeyedRows<K> {
    rows: Rows,
    /// Each row's key and where its bytes end (a row starts where the one before ends).
    ends: Vec<(K, usize)>,
}

impl<K> Default for KeyedRows<K> {
    fn default() -> KeyedRows<K> {
        KeyedRows {
            rows: Rows::default(),
            ends: Vec::new(),
        }
    }
}

impl<K: Ord> KeyedRows<K> {
    /// Encodes one row (`encode` ends it) under its key.
    pub fn push(&mut self, key: K, encode: impl FnOnce(&mut Rows)) {
        encode(&mut self.rows);
        self.ends.push((key, self.rows.buf.len()));
    }

    /// The rows in key order (rows of equal keys in the order they came).
    pub fn into_sorted(self) -> Rows {
        let KeyedRows { rows, ends } = self;
        if ends.windows(2).all(|w| w[0].0 <= w[1].0) {
            return rows;
        }
        let mut spans: Vec<(K, usize, usize)> = Vec::with_capacity(ends.len());
        let mut start = 0;
        for (key, end) in ends {
            spans.push((key, start, end));
            start = end;
        }
        spans.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Rows {
            buf: Vec::with_capacity(rows.buf.len()),
            count: rows.count,
        };
        for (_, start, end) in &spans {
            out.buf.extend_from_slice(&rows.buf[*start..*end]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_as_clickhouse_reads_them() {
        let mut r = Rows::default();
        r.u8(1).u64(2).str("é").date(86_400_000_000_000 * 3);
        r.end_row();
        assert_eq!(r.buf, vec![1, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xc3, 0xa9, 3, 0]);
        let mut r = Rows::default();
        r.bytes(&[7; 300]);
        assert_eq!(&r.buf[..2], &[0xac, 0x02], "300 as LEB128");
        assert_eq!(r.buf.len(), 302);
        let mut r = Rows::default();
        r.i32_array([-1, 2].into_iter())
            .i64_array(std::iter::empty());
        assert_eq!(r.buf, vec![2, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0]);
    }

    #[test]
    fn keyed_rows_come_out_in_key_order_whole() {
        let mut k = KeyedRows::default();
        for (key, text) in [(3u8, "ccc"), (1, "a"), (2, "bb"), (1, "a2")] {
            k.push(key, |r| {
                r.u8(key).str(text);
                r.end_row();
            });
        }
        let rows = k.into_sorted();
        assert_eq!(rows.count, 4);
        assert_eq!(
            rows.buf,
            [
                &[1, 1, b'a'][..],
                &[1, 2, b'a', b'2'],
                &[2, 2, b'b', b'b'],
                &[3, 3, b'c', b'c', b'c']
            ]
            .concat()
        );
        let mut sorted = KeyedRows::default();
        for key in [1u8, 2, 2, 5] {
            sorted.push(key, |r| {
                r.u8(key);
                r.end_row();
            });
        }
        assert_eq!(sorted.into_sorted().buf, vec![1, 2, 2, 5]);
    }
}
