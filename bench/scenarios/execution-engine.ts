import { type BenchContext } from '../lib/context.js';
import { type ScenarioReport } from '../lib/report.js';

export async function executionEngineScenario(_ctx: BenchContext): Promise<ScenarioReport> {
  return {
    scenario: 'execution-engine',
    title: '5. Execution engine',
    figures: [],
    data: {},
    notes: ['not yet'],
  };
}
