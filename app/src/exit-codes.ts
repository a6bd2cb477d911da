/** Exit code for a configuration error; PM2's `stop_exit_codes` lists it so a bad env does not crash-loop, and the release tool names it. */
export const CONFIG_ERROR_EXIT_CODE = 78;
