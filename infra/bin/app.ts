#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { buildMessagesApp } from '../lib/app';

// Environment-agnostic stacks: the same templates deploy to whatever account and region the CLI
// is configured for, and synthesis needs no AWS credentials.
const app = new App();
buildMessagesApp(app);
