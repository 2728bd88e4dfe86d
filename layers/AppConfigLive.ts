import { Layer } from "effect"
import { AppConfig, readAppConfig } from "../src/config/AppConfig.ts"

/** Reads and validates the configuration from the environment (or the ConfigProvider in force). */
export const AppConfigLive = Layer.effect(AppConfig, readAppConfig)
