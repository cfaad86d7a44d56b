//! `google.rpc.Status`, the error body OTLP/HTTP sends for 4xx and 5xx answers and the details
//! of a gRPC error, and `google.rpc.RetryInfo`, the delay a retryable one asks for.
//! (Not OTLP types, so opentelemetry-proto does not generate them.)

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`: OTLP exporters retry RESOURCE_EXHAUSTED only when it is present,
/// and wait `retry_delay` before retrying UNAVAILABLE.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl RetryInfo {
    pub fn after_secs(secs: u64) -> RetryInfo {
        RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: i64::try_from(secs).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        }
    }

    pub fn to_any(&self) -> ProtoAny {
        ProtoAny {
            type_url: RETRY_INFO_TYPE.to_string(),
            value: prost::Message::encode_to_vec(self),
        }
    }
}
