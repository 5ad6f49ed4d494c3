variable "project_id" { type = string }
variable "region" { type = string }
variable "environment" { type = string }
variable "network" { type = string }
variable "subnetwork" { type = string }

variable "shard_count" {
  type    = number
  default = 1
}

variable "node_type" {
  type    = string
  default = "SHARED_CORE_NANO"
}

variable "deletion_protection" {
  type    = bool
  default = true
}

variable "iam_auth" {
  description = "Clients AUTH with an IAM access token (the runtime sets NGX_REDIS_IAM_AUTH)."
  type        = bool
  default     = true
}

variable "tls" {
  description = "Server-authenticated TLS in transit (the runtime verifies the instance's CA)."
  type        = bool
  default     = true
}
