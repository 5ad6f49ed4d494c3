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
