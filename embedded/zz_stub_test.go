package embedded

const helperEnv = "NATTER_EMBEDDED_TEST_HELPER"

func postgresHelperMain() int { return 0 }
