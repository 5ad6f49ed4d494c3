variable "project_id" {
  description = "The Google Cloud project that holds the environment."
  type        = string
}

variable "region" {
  description = "The Google Cloud region of the services, e.g. us-central1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}

variable "name" {
  description = "The job's id."
  type        = string
}

variable "description" {
  description = "What the job does, shown in the console."
  type        = string
}

variable "schedule" {
  description = "cron, in UTC."
  type        = string
}

variable "service_uri" {
  description = "The private service's URL; also the OIDC audience the function expects."
  type        = string
  validation {
    condition     = startswith(var.service_uri, "https://")
    error_message = "service_uri must be an https URL."
  }
}

variable "scheduler_service_account" {
  description = "The identity Cloud Scheduler signs its OIDC tokens as."
  type        = string
}

variable "body" {
  description = "The JSON action, e.g. { action = \"run\" }."
  type        = map(any)
}

variable "attempt_deadline" {
  description = "How long one call may run, e.g. 1800s."
  type        = string
  default     = "1800s"
  validation {
    condition     = can(regex("^[0-9]+s$", var.attempt_deadline))
    error_message = "attempt_deadline must be seconds, like 1800s."
  }
}
