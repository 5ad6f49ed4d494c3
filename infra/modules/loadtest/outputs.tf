output "job" {
  description = "The Cloud Run Job's name (gcloud run jobs execute NAME)."
  value       = google_cloud_run_v2_job.loadtest.name
}

output "results_bucket" {
  description = "The bucket holding each run's summary, CSV and chart."
  value       = google_storage_bucket.results.name
}
