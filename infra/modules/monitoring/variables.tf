variable "project_id" { type = string }
variable "environment" { type = string }

variable "services" {
  description = "Cloud Run service names whose CPU and memory the dashboard shows."
  type        = list(string)
}

variable "notification_channels" {
  description = "Notification channel ids every alert notifies."
  type        = list(string)
  default     = []
}

variable "usage_tokens_per_minute" {
  description = "VertexAIHighUsage: tokens (in + out) per minute sustained for usage_duration_s."
  type        = number
  default     = 100000
}

variable "usage_duration_s" {
  type    = number
  default = 900
}

variable "error_ratio" {
  description = "VertexAIHighErrorRate: failed calls / all calls sustained for error_duration_s."
  type        = number
  default     = 0.05
}

variable "error_duration_s" {
  type    = number
  default = 300
}

variable "cache_hit_ratio" {
  description = "VertexAILowCacheHitRate: cache hits / lookups below this for cache_duration_s."
  type        = number
  default     = 0.5
}

variable "cache_duration_s" {
  type    = number
  default = 1800
}

variable "latency_threshold_ms" {
  description = "The latency SLO: calls answered within this many milliseconds ..."
  type        = number
  default     = 2000
}

variable "latency_goal" {
  description = "... for this share of calls (0.95 = P95) over a rolling 28 days."
  type        = number
  default     = 0.95
}
