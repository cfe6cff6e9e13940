-- How an execution used its worker's GPU (gpu_utilization, memory_efficiency: JSON, null
-- values on a CPU worker), written with its outcome.
ALTER TABLE executions ADD COLUMN engine_metrics TEXT;
