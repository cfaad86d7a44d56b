//! `google.rpc.Status`, the error body OTLP/HTTP sends for 4xx and 5xx answers.
//! (Not an OTLP type, so opentelemetry-proto does not generate it.)

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}
