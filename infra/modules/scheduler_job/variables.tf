variable "project_id" { type = string }
variable "region" { type = string }
variable "name" { type = string }
variable "description" { type = string }

variable "schedule" {
  description = "cron, in UTC"
  type        = string
}

variable "service_uri" {
  description = "The private service's URL; also the OIDC audience the function expects."
  type        = string
}

variable "scheduler_service_account" { type = string }

variable "body" {
  description = "The JSON action, e.g. { action = \"run\" }."
  type        = map(any)
}

variable "attempt_deadline" {
  type    = string
  default = "1800s"
}
