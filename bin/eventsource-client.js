#!/usr/bin/env node
import { main } from '../dist/cli/client.js';

main();
